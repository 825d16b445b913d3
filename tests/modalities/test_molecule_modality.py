"""The molecules modality: SMILES/NPZ/PNG writers, and the MOSES table of a model whose samples are known (it draws
training molecules and invalid strings), through the registry as the harness calls it."""

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401

pytest.importorskip("rdkit")
pytest.importorskip("fcd")
pytestmark = pytest.mark.usefixtures("one_thread")

from genlab import registry  # noqa: E402
from genlab.config import build_run_config  # noqa: E402
from genlab.data import load_dataset  # noqa: E402
from genlab.data.molecules import MoleculeTokenizer  # noqa: E402
from genlab.errors import ConfigError  # noqa: E402
from genlab.modalities import modality_of  # noqa: E402
from genlab.models.base import GenerativeModel, ModelConfig  # noqa: E402

SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "COc1ccc2[nH]ccc2c1", "O=C(N)c1ccncc1",
    "CN1C(=O)N(C)c2nc[nH]c2C1=O", "Nc1ncnc2[nH]cnc12", "CC(=O)Nc1ccc(O)cc1", "O=C(O)c1ccccc1O", "c1ccc2ccccc2c1",
    "CNC(=O)c1ccccc1", "CCOC(=O)c1ccc(N)cc1", "Clc1ccc(Cl)cc1", "CCN(CC)CCNC(=O)c1ccc(N)cc1", "O=C1CCCN1", "OCC(O)CO",
    "COc1cc(C=O)ccc1O", "OC(=O)CCc1ccccc1", "c1ccc(-c2ccccc2)cc1", "CCCCN", "C1CCOC1", "c1ccsc1", "CC(N)C(=O)O", "CCS",
]  # fmt: skip


class Replay(GenerativeModel):
    """A 'model' whose samples are given token rows, cycled."""

    family = "autoregressive"

    def __init__(self, spec, rows):
        super().__init__(ModelConfig(name="replay"), spec)
        self.rows = rows

    def sample(self, n, *, labels=None, generator=None, **kwargs):
        return self.rows[torch.arange(n) % len(self.rows)]


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "mols.csv"
    path.write_text("smiles,id\n" + "".join(f"{s},{i}\n" for i, s in enumerate(SMILES)))
    cfg = build_run_config(
        {
            "data": {"name": "smiles_file", "root": str(path)},
            "model": {"name": "charrnn", "hidden": 8, "n_layers": 1},
            "train": {"max_steps": 1},
            "eval": {"n_samples": 8},
        }
    )
    train, _ = load_dataset(cfg.data, "train")
    return cfg, train


def test_writers_round_trip(run, tmp_path):
    _, train = run
    mod = modality_of(train.spec)
    assert type(mod) is type(registry.modality("molecules"))
    x = train.x[:5].long()
    smiles = MoleculeTokenizer.from_spec(train.spec).decode(x)
    assert mod.write(x, None, tmp_path / "out/s.smi", train.spec).read_text().splitlines() == smiles
    z = np.load(mod.write(x, None, tmp_path / "s.npz", train.spec))
    assert z["smiles"].tolist() == smiles and np.array_equal(z["tokens"], x.numpy()) and tuple(z["vocab"]) == train.spec.vocab
    png = mod.write(x, None, tmp_path / "grid.png", train.spec)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match=".smi"):
        mod.write(x, None, tmp_path / "s.wav", train.spec)


@pytest.mark.filterwarnings("ignore:only 6 valid molecules")
def test_sample_metrics_of_known_samples(run):
    cfg, train = run
    tok = MoleculeTokenizer.from_spec(train.spec)
    copies = train.x[:6].long()  # six training molecules, each once
    invalid = tok.encode(["C1CC", "CC(C"], train.spec.shape[0])[0].long()  # an unclosed ring and an unclosed branch
    model = Replay(train.spec, torch.cat([copies, invalid]))
    numbers, conv = modality_of(train.spec).sample_metrics(model, cfg, None, {})
    assert numbers["valid"] == pytest.approx(6 / 8) and numbers["unique@1000"] == 1.0 and numbers["Novelty"] == 0.0
    assert 0 < numbers["SNN/Test"] < 1 and numbers["FCD/Test"] > 0 and "FCD/TestSF" not in numbers
    assert conv["n_samples"] == 8 and "Test" in conv["references"]
