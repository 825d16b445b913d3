"""REINVENT (genlab optimize): a few steps raise a learnable score above the prior's, the agent is a run that samples,
the outputs are whole or absent; the built-in objectives on hand-computed molecules; callables and bad objectives."""

import csv
import json
import random
import sys

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401

pytest.importorskip("rdkit")
pytestmark = pytest.mark.usefixtures("one_thread")

from genlab import api  # noqa: E402
from genlab.apps.optimize import format_report, optimize, set_report  # noqa: E402
from genlab.cli import main  # noqa: E402
from genlab.errors import ConfigError, DataError  # noqa: E402
from genlab.metrics import molecule_objectives as mo  # noqa: E402


def share_of_nitrogen(smiles: str) -> float:
    """The share of N among the characters of a C/N chain: trivially learnable by a token model."""
    return smiles.count("N") / max(1, len(smiles))


def train_prior(root, model: dict, steps: int):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rng = random.Random(0)
    chains = set()
    while len(chains) < 300:  # C/N chains, about one N in five: every one is a valid molecule
        chains.add("".join("N" if rng.random() < 0.2 else "C" for _ in range(rng.randint(3, 9))))
    (root / "cn.smi").write_text("".join(s + "\n" for s in sorted(chains)))
    cfg = {
        "data": {"name": "smiles_file", "root": str(root / "cn.smi")},
        "model": model,
        "train": {"max_steps": steps, "batch_size": 32, "lr": 1e-2, "warmup_steps": 10, "progress": False, "num_threads": 1},
    }
    api.train(cfg, run_dir=root / "prior", resume="never")
    torch.set_num_threads(before)
    return root / "prior"


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return train_prior(tmp_path_factory.mktemp("prior"), {"name": "charrnn", "hidden": 32, "n_layers": 1, "embed": 8, "dropout": 0.0}, 100)


def test_reinvent_raises_the_score_and_writes_a_run(prior, tmp_path):
    res = optimize(prior, share_of_nitrogen, steps=30, batch_size=64, n=300, out=tmp_path / "agent", progress=False)
    r = res.report
    assert r["mean_score"] > r["prior"]["mean_score"] + 0.08, format_report(r)
    assert r["top10"] >= r["prior"]["top10"] and r["valid"] > 0.9 and 0 < r["IntDiv"] < 1
    assert len(res.history) == 30 and res.history[-1]["step"] == 30
    out = tmp_path / "agent"
    assert {p.name for p in out.iterdir()} == {"optimized.csv", "optimize.json", "history.jsonl", "config.toml", "model.safetensors"}
    rows = list(csv.DictReader((out / "optimized.csv").open()))
    scores = [float(row["score"]) for row in rows if row["valid"] == "1"]
    assert len(rows) == 300 and scores == sorted(scores, reverse=True)
    assert all(float(row["score"]) == pytest.approx(share_of_nitrogen(row["smiles"]), abs=1e-5) for row in rows[:20])
    assert json.loads((out / "optimize.json").read_text())["top1"] == r["top1"]
    agent = api.load(out)  # the agent is a run others sample from, and it is the optimised weights
    x, _ = api.sample(agent, 200, seed=3)
    agent_mean = np.mean([share_of_nitrogen(s) for s in api.save_samples(x, None, tmp_path / "s.smi", agent).read_text().split()])
    assert agent_mean > r["prior"]["mean_score"] + 0.05
    with pytest.raises(ConfigError, match="not an empty folder"):
        optimize(prior, share_of_nitrogen, steps=1, out=out, progress=False)


def test_module_function_objective_and_the_cli(prior, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_scores.py").write_text("def n_share(s):\n    return s.count('N') / max(1, len(s))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main([
        "optimize", str(prior), "--objective", "my_scores:n_share", "--steps", "2", "--batch-size", "16", "--n", "50",
        "--replay", "4", "--out", str(tmp_path / "cli"),
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "my_scores:n_share" in printed and "top10" in printed and (tmp_path / "cli/model.safetensors").is_file()
    sys.modules.pop("my_scores", None)


def test_the_token_transformer_is_a_prior_too(tmp_path):
    run = train_prior(tmp_path, {"name": "transformer", "d_model": 16, "n_layers": 1, "n_heads": 2}, 20)
    res = optimize(run, "qed", steps=2, batch_size=16, n=20, progress=False)
    assert res.report["objective"] == "qed" and res.report["published"].startswith("0.948")


@pytest.mark.parametrize(
    "objective, error, match",
    [
        (lambda s: 1 / 0, DataError, r"raised ZeroDivisionError.*on SMILES '"),
        (lambda s: float("nan"), DataError, r"returned nan on SMILES"),
        (lambda s: "high", DataError, r"returned 'high' \(not a number\)"),
        ("nonsense", ConfigError, "expected qed, plogp, similarity:SMILES or module:function"),
        ("no_such_module_xyz:f", ConfigError, "cannot import module 'no_such_module_xyz'"),
        ("json:no_such_function", ConfigError, "has no attribute 'no_such_function'"),
        ("similarity:C1CC", ConfigError, "cannot parse the target SMILES"),
    ],
)
def test_bad_objectives_name_the_objective_and_the_molecule(prior, objective, error, match, tmp_path):
    with pytest.raises(error, match=match):
        optimize(prior, objective, steps=1, batch_size=4, n=4, out=tmp_path / "o", progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary folder


def test_priors_that_cannot_be_optimised(tmp_path):
    from genlab.models.autoregressive.charrnn import CharRNN, CharRNNConfig
    from genlab.spec import DataSpec

    spec = DataSpec((8,), encoding="tokens", vocab=("<eos>", "C"), modality="molecules")
    with pytest.raises(ConfigError, match="unconditional prior"):
        optimize(CharRNN(CharRNNConfig(hidden=4, n_layers=1, condition_on=("qed",)), spec), "qed", steps=1, progress=False)
    with pytest.raises(ConfigError, match="needs the prior's run config"):
        optimize(CharRNN(CharRNNConfig(hidden=4, n_layers=1), spec), "qed", steps=1, out=tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="steps: expected an integer >= 1"):
        optimize(CharRNN(CharRNNConfig(hidden=4, n_layers=1), spec), "qed", steps=0)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------ objectives
def mol(smiles):
    from rdkit import Chem

    return Chem.MolFromSmiles(smiles)


def test_penalized_logp_by_hand():
    # Benzene: Crippen logP = 6 aromatic CH (C18 0.1581 + H1 0.1230) = 1.6866; SA = 1 (its floor); no ring above 6.
    expected = (
        (1.6866 - 2.4570953396190123) / 1.434324401111988
        - (1.0 - 3.0525811293166134) / 0.8335207024513095
        + 0.0485696876403053 / 0.2860212110245455
    )
    assert mo.penalized_logp(mol("c1ccccc1")) == pytest.approx(expected, abs=1e-4)
    # Cyclooctane and cyclohexane differ by two CH2 in logP and SA, and by the ring penalty of 8 - 6 = 2 atoms.
    from rdkit.Chem import Crippen

    sa = mo.sascorer()
    for smiles, cycle in (("C1CCCCCCC1", 2), ("C1CCCCC1", 0), ("CCCCCCCC", 0)):
        m = mol(smiles)
        by_hand = (Crippen.MolLogP(m) - mo.PLOGP_LOGP[0]) / mo.PLOGP_LOGP[1] - (sa.calculateScore(m) - mo.PLOGP_SA[0]) / mo.PLOGP_SA[1]
        assert mo.penalized_logp(m) == pytest.approx(by_hand - (cycle - mo.PLOGP_CYCLE[0]) / mo.PLOGP_CYCLE[1], abs=1e-9)


def test_similarity_by_hand():
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    sim = mo.resolve_objective("similarity:CC(=O)Oc1ccccc1C(=O)O")
    assert sim.score("CC(=O)Oc1ccccc1C(=O)O", mol("OC(=O)c1ccccc1OC(C)=O")) == 1.0  # aspirin written another way
    a, b = set(gen.GetFingerprint(mol("CC(=O)Oc1ccccc1C(=O)O")).GetOnBits()), set(gen.GetFingerprint(mol("OC(=O)c1ccccc1O")).GetOnBits())
    assert sim.score("OC(=O)c1ccccc1O", mol("OC(=O)c1ccccc1O")) == pytest.approx(len(a & b) / len(a | b))  # salicylic acid
    # Methane shares no environment with ethane (a CH4 atom is not a CH3 atom): T = 0.
    assert mo.resolve_objective("similarity:C").score("CC", mol("CC")) == 0.0


def test_qed_reward_and_plogp_squash():
    q = mo.resolve_objective("qed")
    assert q.reward(0.7) == 0.7 and q.score("c1ccccc1", mol("c1ccccc1")) == pytest.approx(0.4426, abs=1e-4)
    p = mo.resolve_objective("plogp")
    assert p.reward(0.0) == 0.5 and 0 < p.reward(-10) < p.reward(5) < 1


def test_set_report_counts():
    smiles = ["CCO", "OCC", "c1ccccc1", "C1CC"]  # ethanol twice (two spellings), benzene, an invalid string
    scores = [0.4, 0.4, 0.9, None]
    r = set_report(smiles, scores, [mol(s) for s in smiles])
    assert r["valid"] == 0.75 and r["unique"] == pytest.approx(2 / 3) and r["top1"] == 0.9 and r["top10"] is None
    assert r["mean_score"] == pytest.approx(1.7 / 3)
