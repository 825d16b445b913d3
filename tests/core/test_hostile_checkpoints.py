"""Hostile and broken checkpoints: planted pickles never run, every damaged field of state.pt or a weights file is
refused with a CheckpointError that names the file and the field, never a raw KeyError or an unpickled object."""

import ast
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import genlab
from genlab import checkpoint as ckpt
from genlab.config import build_run_config
from genlab.errors import CheckpointError
from genlab.train.trainer import Trainer

SRC = Path(genlab.__file__).parent


class _Planted:
    """Unpickling this creates `path` (any code could run in its place)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 32, "max_steps": 10, "lr": 0.05, "warmup_steps": 5, "log_every": 5, "ckpt_every": 5, "progress": False},
        "eval": {"batch_size": 64},
    }
    cfg["train"]["ema_decay"] = 0.9
    return genlab.train(cfg, run_dir=tmp_path_factory.mktemp("trained") / "run").run_dir


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of a run trained 10 steps (checkpoints at 5 and 10) with EMA."""
    return Path(shutil.copytree(trained, tmp_path / "run", ignore=shutil.ignore_patterns(".lock")))


def resume(run, gauss_cfg):
    """Resume `run` for 10 more steps (a budget change is allowed on resume)."""
    gauss_cfg["train"].update(max_steps=20, ckpt_every=5, ema_decay=0.9)
    return genlab.train(gauss_cfg, run_dir=run)


def edit_state(run, **changes):
    state = ckpt.load_state(run / "state.pt")
    for k, v in changes.items():
        if v is KeyError:
            del state[k]
        else:
            state[k] = v
    torch.save(state, run / "state.pt")


@pytest.mark.parametrize("how", ["torch_zip", "raw_pickle"])
def test_planted_pickle_in_state_is_refused_and_never_runs(run, gauss_cfg, tmp_path, how):
    marker = tmp_path / "pwned"
    evil = {**ckpt.load_state(run / "state.pt"), "step": _Planted(marker)}
    if how == "torch_zip":
        torch.save(evil, run / "state.pt")
    else:
        (run / "state.pt").write_bytes(pickle.dumps(evil))
    with pytest.raises(CheckpointError, match="state.pt") as e:
        resume(run, gauss_cfg)
    assert not marker.exists()
    msg = str(e.value)
    assert ("could run code" in msg and "io.open" in msg) if how == "torch_zip" else "not the zip archive" in msg


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_planted_pickle_as_weights_is_refused_and_never_runs(run, tmp_path, name):
    marker = tmp_path / "pwned"
    torch.save({"w": _Planted(marker)}, run / name)
    with pytest.raises(CheckpointError, match=f"{name} is not a readable safetensors file"):
        genlab.load(run, ema=name == "ema.safetensors")
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """The only unpickler genlab may use is torch's restricted one: every torch.load passes weights_only=True."""
    calls = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("torch.load", "torch.serialization.load"):
                kw = {k.arg: k.value for k in node.keywords}
                calls.append((path.name, isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True))
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("pickle.load", "pickle.loads"):
                calls.append((path.name, False))
    assert calls and all(ok for _, ok in calls), calls


def test_state_holds_only_tensors_and_plain_values(run):
    """state.pt is written in the restricted format: it loads with weights_only=True and names no Python global."""
    assert torch.serialization.get_unsafe_globals_in_checkpoint(run / "state.pt") == []
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["genlab_format"] == ckpt.FORMAT and state["step"] == 10


def test_old_format_state_says_what_to_do(run, gauss_cfg):
    """A format-1 state (numpy's RNG state pickled as an ndarray) is refused without unpickling, saying what to do."""
    state = ckpt.load_state(run / "state.pt")
    state["genlab_format"] = "1"
    state["rng"][0]["numpy"] = np.random.get_state()
    torch.save(state, run / "state.pt")
    with pytest.raises(CheckpointError, match="from a genlab before checkpoint format 2.*weights still load.*new run directory"):
        resume(run, gauss_cfg)
    assert genlab.load(run).mu.shape == (1, 1, 8, 8)  # the weights stay usable


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not the zip archive"),
        ("half", "truncated or corrupt"),
        (b"version https://git-lfs.github.com/spec/v1\n", "not the zip archive"),
    ],
)
def test_truncated_or_empty_state_is_refused(run, gauss_cfg, content, match):
    data = (run / "state.pt").read_bytes()
    (run / "state.pt").write_bytes(data[: len(data) // 2] if content == "half" else content)
    with pytest.raises(CheckpointError, match=f"state.pt cannot be read.*{match}"):
        resume(run, gauss_cfg)


def test_foreign_torch_files_are_refused(run, gauss_cfg):
    torch.save(torch.zeros(3), run / "state.pt")
    with pytest.raises(CheckpointError, match="not a genlab trainer state"):
        resume(run, gauss_cfg)
    torch.save({"model": {"w": torch.zeros(3)}, "epoch": 3}, run / "state.pt")
    with pytest.raises(CheckpointError, match="not a genlab trainer state.*another program"):
        resume(run, gauss_cfg)


def test_future_format_state_asks_for_an_upgrade(run, gauss_cfg):
    edit_state(run, genlab_format="99")
    with pytest.raises(CheckpointError, match="format '99'.*reads format 2.*upgrade genlab"):
        resume(run, gauss_cfg)


FIELDS = ["step", "elapsed", "optimizers", "loader", "ema_updates", "rng", "world_size", "pending_logs", "skipped", "model", "ema"]


@pytest.mark.parametrize("field", FIELDS)
def test_missing_field_is_named(run, gauss_cfg, field):
    edit_state(run, **{field: KeyError})
    with pytest.raises(CheckpointError, match=f"state.pt: the trainer state has no '{field}' field"):
        resume(run, gauss_cfg)


@pytest.mark.parametrize(
    "field, value",
    [
        ("step", -1),
        ("step", "10"),
        ("step", True),
        ("elapsed", float("nan")),
        ("elapsed", -3.0),
        ("optimizers", []),
        ("optimizers", [{"state": {}}]),
        ("loader", {"epoch": 0, "pos": 10**9, "served": 0}),
        ("loader", {"epoch": 0, "pos": 0}),
        ("ema_updates", -2),
        ("rng", []),
        ("rng", [{"torch": torch.zeros(5)}]),
        ("world_size", 0),
        ("pending_logs", ({"loss": "x"}, 1)),
        ("pending_logs", {"loss": 1.0}),
        ("skipped", 3),
        ("model", {"mu": torch.zeros(3)}),
        ("model", [torch.zeros(3)]),
        ("ema", None),
    ],
)
def test_bad_field_is_named(run, gauss_cfg, field, value):
    edit_state(run, **{field: value})
    with pytest.raises(CheckpointError, match=f"state.pt: field '{field}' of the trainer state is .*expected"):
        resume(run, gauss_cfg)


def test_optimiser_state_of_another_shape_is_refused(run, gauss_cfg):
    state = ckpt.load_state(run / "state.pt")
    state["optimizers"][0]["state"][0]["exp_avg"] = torch.zeros(3, 3)
    torch.save(state, run / "state.pt")
    with pytest.raises(CheckpointError, match=r"optimizers\[0\] holds exp_avg of shape \(3, 3\)"):
        resume(run, gauss_cfg)


def test_damaged_rng_state_is_refused(run, gauss_cfg):
    state = ckpt.load_state(run / "state.pt")
    state["rng"][0]["torch"] = torch.zeros(7, dtype=torch.uint8)
    torch.save(state, run / "state.pt")
    with pytest.raises(CheckpointError, match="field 'rng' of the trainer state is damaged"):
        resume(run, gauss_cfg)


@pytest.mark.parametrize("name", ["model.safetensors", "ema.safetensors"])
def test_damaged_weights_are_refused_by_load_and_rewritten_by_resume(run, gauss_cfg, name):
    """The weights files serve genlab.load / sample / eval, which refuse them when damaged; a resume reads state.pt
    (which holds the weights too) and rewrites them, so that the run directory agrees with itself again."""
    from safetensors.torch import load_file

    path = run / name
    good = {k: v.clone() for k, v in load_file(str(path)).items()}  # load_file maps the file, which is cut below
    damaged = [
        (path.read_bytes()[: path.stat().st_size // 2], "truncated or corrupt"),
        (b"", "truncated or corrupt"),
    ]
    for data, match in damaged:
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=f"{name}.*{match}"):
            genlab.load(run, ema=name == "ema.safetensors")
    for meta, match in [(None, "not a genlab checkpoint"), ({"genlab_format": "7"}, "format '7'.*upgrade genlab")]:
        save_file({"w": torch.zeros(3)}, str(path), metadata=meta)
        with pytest.raises(CheckpointError, match=match):
            genlab.load(run, ema=name == "ema.safetensors")
    gauss_cfg["train"].update(ema_decay=0.9)
    t = Trainer(build_run_config(gauss_cfg), run)
    assert t.step == 10 and int(ckpt.read_metadata(path)["step"]) == 10
    assert all(torch.equal(good[k], v) for k, v in load_file(str(path)).items())


def test_weights_of_format_1_still_load(run):
    """Format 2 changed only the trainer state: weights files written as format 1 (shipped feature nets) still load."""
    from safetensors.torch import load_file

    meta = ckpt.read_metadata(run / "model.safetensors")
    save_file(load_file(str(run / "model.safetensors")), str(run / "model.safetensors"), metadata={**meta, "genlab_format": "1"})
    m = genlab.load(run, ema=False)
    assert torch.equal(m.mu, load_file(str(run / "model.safetensors"))["mu"])


def test_refused_resume_leaves_the_checkpoint_untouched(run, gauss_cfg):
    """A refused resume writes nothing: the files stay byte for byte what they were (the user can still recover)."""
    edit_state(run, step=KeyError)
    files = lambda: {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}  # noqa: E731
    before = files()
    with pytest.raises(CheckpointError):
        resume(run, gauss_cfg)
    assert files() == before
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] <= 10
