"""Checkpoints round-trip exactly; truncated, foreign and mismatched files give clear errors."""

import pytest
import torch
from safetensors.torch import save_file

import genlab
from genlab import checkpoint as ckpt
from genlab.errors import CheckpointError


@pytest.fixture
def run(tmp_path, gauss_cfg):
    return genlab.train(gauss_cfg, ["train.ema_decay=0.9"], run_dir=tmp_path / "run").run_dir


def test_load_round_trip_is_exact(run, tmp_path):
    m = genlab.load(run)
    ckpt.save_weights(tmp_path / "again.safetensors", m, {"model": "test_gaussian", "step": 1})
    m2 = genlab.load(run)
    m2.mu.data.zero_()
    ckpt.load_weights(tmp_path / "again.safetensors", m2)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    g = lambda: torch.Generator().manual_seed(3)
    assert torch.equal(m.sample(5, generator=g()), m2.sample(5, generator=g()))


def test_truncated_checkpoint(run):
    data = (run / "ema.safetensors").read_bytes()
    (run / "ema.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        genlab.load(run)
    state = (run / "state.pt").read_bytes()
    (run / "state.pt").write_bytes(state[:100])
    with pytest.raises(CheckpointError, match="state.pt cannot be read"):
        ckpt.load_state(run / "state.pt")


def test_foreign_checkpoint(run):
    save_file({"w": torch.zeros(3)}, str(run / "ema.safetensors"))
    with pytest.raises(CheckpointError, match="not a genlab checkpoint"):
        genlab.load(run)
    (run / "ema.safetensors").write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        genlab.load(run)


def test_checkpoint_of_another_shape(run, tmp_path):
    other = torch.nn.Linear(2, 2)
    meta = ckpt.read_metadata(run / "ema.safetensors")
    ckpt.save_weights(run / "ema.safetensors", other, {"model": "test_gaussian", "step": 1, "spec": meta["spec"]})
    with pytest.raises(CheckpointError, match="does not fit this model"):
        genlab.load(run)


def test_no_checkpoint_and_no_run(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        genlab.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a genlab run directory"):
        genlab.load(tmp_path / "empty")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    ckpt.atomic_write_text(path, "old")

    def explode(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        ckpt.atomic_write(path, explode)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
