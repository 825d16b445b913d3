"""Property-conditional CharRNN: properties computed with RDKit and cached, the *_props datasets, target parsing,
conditions change the samples, a tiny conditional model lands closer to the requested molecular weight than the
unconditional one, and the conditional metrics on hand-made cases and through the molecules modality."""

import functools
import json
import math

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401

pytest.importorskip("rdkit")
pytestmark = pytest.mark.usefixtures("one_thread")

from _alkanes import CHAINS, SPEC, alkane_logp, train_on_chains  # noqa: E402
from genlab.config import build_run_config  # noqa: E402
from genlab.data import load_dataset  # noqa: E402
from genlab.data import molecule_properties as mp  # noqa: E402
from genlab.data.molecules import MoleculeTokenizer  # noqa: E402
from genlab.errors import ConfigError, DataError  # noqa: E402
from genlab.metrics.molecule_conditions import condition_metrics, smiles_condition_metrics  # noqa: E402
from genlab.models.autoregressive.charrnn import CharRNN, CharRNNConfig  # noqa: E402
from genlab.spec import DataSpec  # noqa: E402


# ------------------------------------------------------------------------------------------------ properties
def test_properties_of_known_molecules():
    from rdkit import Chem
    from rdkit.Chem import QED, Crippen

    props = mp.smiles_properties(["CCO", "c1ccccc1", "C1CC", ""])
    assert props[0, 3] == pytest.approx(46.069, abs=1e-3) and props[1, 3] == pytest.approx(78.114, abs=1e-3)
    assert props[0, 0] == pytest.approx(Crippen.MolLogP(Chem.MolFromSmiles("CCO")), abs=1e-5)
    assert props[1, 1] == pytest.approx(QED.qed(Chem.MolFromSmiles("c1ccccc1")), abs=1e-6)
    assert props[1, 2] == pytest.approx(1.0, abs=1e-6)  # benzene: the SA score's floor (a common fragment, no penalty)
    assert np.isnan(props[2:]).all()  # an unclosed ring and an empty string
    assert mp.sascorer() is not None  # RDKit's wheel ships Contrib/SA_Score


def test_parse_targets_forms_and_errors():
    names = ("logp", "qed")
    assert torch.equal(mp.parse_targets("qed=0.9, logp = -1.5", names, 2)["logp"], torch.tensor([-1.5, -1.5]))
    assert torch.equal(mp.parse_targets({"qed": [0.1, 0.2]}, names, 2)["qed"], torch.tensor([0.1, 0.2]))
    assert torch.equal(mp.parse_targets([1.0, 0.5], names, 3)["qed"], torch.full((3,), 0.5))
    for bad, match in [
        ("qed", "NAME=VALUE"),
        ("mw=300", "cannot take 'mw'"),
        ({"qed": [1, 2, 3]}, "1 or 2 values"),
        (torch.zeros(2, 3), "shape"),
        ({"qed": math.nan}, "not finite"),
        ("", "no value"),
    ]:
        with pytest.raises(ConfigError, match=match):
            mp.parse_targets(bad, names, 2)
    with pytest.raises(ConfigError, match="unknown property 'tpsa'"):
        mp.check_property_names(["qed", "tpsa"], "model.condition_on")


def test_props_dataset_labels_are_the_properties_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mols.smi"
    distinct = [c + end for c in CHAINS for end in ("", "O", "N")]  # about one in ten is a test molecule
    path.write_text("".join(s + "\n" for s in [*distinct, "c1ccccc1O", "C1CC"]))
    cfg = build_run_config(
        {"data": {"name": "smiles_file_props", "root": str(path)}, "model": {"name": "charrnn"}, "train": {"max_steps": 1}}
    )
    with pytest.warns(UserWarning, match="skipped 1 training SMILES"):
        ds, _ = load_dataset(cfg.data, "train")
    smiles = MoleculeTokenizer.from_spec(ds.spec).decode(ds.x)
    assert ds.y.dtype == torch.float32 and ds.y.shape == (len(ds), 4)
    assert np.allclose(ds.y.numpy(), mp.smiles_properties(smiles), equal_nan=True)
    assert len(list((tmp_path / "cache/molecules").glob("properties_*.npy"))) == 1
    monkeypatch.setattr(mp, "smiles_properties", lambda *a, **k: pytest.fail("properties recomputed despite the cache"))
    again, _ = load_dataset(cfg.data, "train")
    assert torch.equal(again.y, ds.y)


# ------------------------------------------------------------------------------------------------ model
def trained(condition_on: tuple[str, ...], steps: int = 200, bins: int = 0) -> CharRNN:
    torch.manual_seed(0)
    model = CharRNN(CharRNNConfig(hidden=24, n_layers=1, embed=8, dropout=0.0, condition_on=condition_on, condition_bins=bins), SPEC)
    return train_on_chains(model, steps)


def test_conditions_change_the_samples_and_bad_conditions_are_refused():
    torch.manual_seed(0)
    model = CharRNN(CharRNNConfig(hidden=16, n_layers=2, embed=8, condition_on=("qed", "mw")), SPEC)
    a = model.sample(64, generator=torch.Generator().manual_seed(3), properties="mw=100,qed=0.2")
    b = model.sample(64, generator=torch.Generator().manual_seed(3), properties="mw=500,qed=0.9")
    c = model.sample(64, generator=torch.Generator().manual_seed(3), properties={"mw": 100.0, "qed": 0.2})
    assert torch.equal(a, c) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="needs each molecule's properties"):
        model.loss({"x": torch.ones(2, 14, dtype=torch.long)})
    with pytest.raises(ConfigError, match="cannot be combined"):
        CharRNN(
            CharRNNConfig(conditional=True, condition_on=("qed",)), DataSpec((5,), num_classes=2, encoding="tokens", vocab=("<eos>", "C"))
        )
    with pytest.raises(ConfigError, match="property-conditional"):
        CharRNN(CharRNNConfig(hidden=4, n_layers=1), SPEC).sample(2, properties="qed=0.5")


@functools.cache
def unconditional() -> CharRNN:
    return trained(())  # built inside a test, so under its one_thread fixture


@pytest.mark.parametrize("bins", [0, 8])
def test_conditional_model_lands_closer_to_the_requested_logp(bins):
    """Alkane chains C_1..C_12: logP rises with the length. A conditional CharRNN (continuous, or binned in 8 bins) hits
    the requested logP far better than the unconditional one trained the same way (which can only match the marginal)."""
    logp = alkane_logp()
    targets = logp[torch.tensor([2, 5, 8, 11])].repeat_interleave(50)
    cond = trained(("logp",), bins=bins)
    g = torch.Generator().manual_seed(0)
    mae_c = (logp[(cond.sample(200, generator=g, properties=targets[:, None]) != 0).sum(1)] - targets).abs().mean()
    mae_u = (logp[(unconditional().sample(200, generator=g) != 0).sum(1)] - targets).abs().mean()
    assert mae_c < 0.3 * mae_u, (mae_c, mae_u)
    # Unrequested conditions are drawn from the training conditions the model kept.
    assert int(cond.cond_bank_seen) == 200 * 32 and set(cond.cond_bank[:, 0].tolist()) <= set(logp[1:].tolist())


# ------------------------------------------------------------------------------------------------ metrics
def test_condition_metrics_on_hand_made_cases():
    targets = np.array([[1.0, 0.5], [2.0, 0.5], [3.0, 0.9], [0.0, 0.0]])
    achieved = np.array([[1.4, 0.52], [np.nan, np.nan], [3.0, 0.7], [1.0, 0.0]])
    out = condition_metrics(targets, achieved, ("logp", "qed"))
    assert out["cond_valid"] == 0.75
    assert out["cond_mae_logp"] == pytest.approx((0.4 + 0.0 + 1.0) / 3) and out["cond_within_logp"] == pytest.approx(2 / 3)
    assert out["cond_mae_qed"] == pytest.approx((0.02 + 0.2 + 0.0) / 3) and out["cond_within_qed"] == pytest.approx(2 / 3)
    assert condition_metrics(targets[:1], achieved[1:2], ("logp", "qed"))["cond_mae_logp"] is None
    with pytest.raises(DataError, match="empty sample"):
        condition_metrics(np.zeros((0, 1)), np.zeros((0, 1)), ("qed",))
    with pytest.raises(DataError, match="must both be"):
        condition_metrics(np.zeros((3, 1)), np.zeros((2, 1)), ("qed",))
    # Through SMILES: ethanol asked for 46.07 Da lands exactly; an invalid string is left out.
    out = smiles_condition_metrics(["CCO", "C1CC"], np.array([[46.069], [50.0]]), ("mw",))
    assert out["cond_mae_mw"] == pytest.approx(0.0, abs=1e-3) and out["cond_within_mw"] == 1.0 and out["cond_valid"] == 0.5


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_conditional_run_trains_samples_and_reports_the_conditional_metrics(tmp_path, monkeypatch, capsys):
    pytest.importorskip("fcd")
    from genlab import api
    from genlab.cli import main

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    distinct = [c + end for c in CHAINS for end in ("", "O", "N", "C(=O)O")]
    (tmp_path / "mols.smi").write_text("".join(s + "\n" for s in distinct))
    cfg = {
        "data": {"name": "smiles_file_props", "root": str(tmp_path / "mols.smi")},
        "model": {"name": "charrnn", "hidden": 16, "n_layers": 1, "embed": 8, "condition_on": ["logp", "mw"]},
        "train": {"max_steps": 5, "batch_size": 16, "progress": False, "num_threads": 1},
        "eval": {"n_samples": 40, "n_examples": 8},
    }
    api.train(cfg, run_dir=tmp_path / "run", resume="never")
    res = api.evaluate(tmp_path / "run")
    for p in ("logp", "mw"):
        assert res[f"cond_mae_{p}"] is None or res[f"cond_mae_{p}"] >= 0
        assert f"cond_within_{p}" in res and f"cond_mae_{p}_shuffled" in res
    assert 0 <= res["cond_valid"] <= 1 and "random test molecules" in res["conventions"]["samples"]["conditions"]
    assert json.loads((tmp_path / "run/eval.json").read_text())["cond_valid"] == res["cond_valid"]
    assert main(["sample", str(tmp_path / "run"), "--n", "8", "--properties", "mw=100", "--out", str(tmp_path / "m.smi")]) == 0
    assert len((tmp_path / "m.smi").read_text().splitlines()) == 8
    assert main(["sample", str(tmp_path / "run"), "--n", "8", "--properties", "tpsa=3", "--out", str(tmp_path / "bad.smi")]) == 2
    assert "cannot take 'tpsa'" in capsys.readouterr().err and not (tmp_path / "bad.smi").exists()


def test_eval_targets_are_test_properties_or_the_requested_values():
    from genlab.data.base import ArrayDataset
    from genlab.modalities.molecules import eval_targets

    torch.manual_seed(0)
    model = CharRNN(CharRNNConfig(hidden=8, n_layers=1, condition_on=("qed", "mw")), SPEC)
    model.remember_conditions(torch.tensor([[0.5, 200.0], [0.6, 300.0]]))
    y = torch.tensor([[1.0, 0.1, 2.0, 100.0], [2.0, 0.2, 3.0, 110.0], [3.0, 0.3, 4.0, 120.0]])
    test = ArrayDataset(torch.zeros(3, 14, dtype=torch.long), y, SPEC)
    t = eval_targets(model, test, 50, seed=0)
    rows = {tuple(r) for r in t.double().round(decimals=4).tolist()}
    assert t.shape == (50, 2) and rows == {(0.1, 100.0), (0.2, 110.0), (0.3, 120.0)}  # random test rows, all three drawn
    t = eval_targets(model, test, 50, seed=0, properties="qed=0.9")
    assert (t[:, 0] == 0.9).all() and set(t[:, 1].tolist()) <= {200.0, 300.0}  # MW drawn from the kept training conditions
