"""A crash at any moment of a checkpoint leaves one complete checkpoint: killed between the weights files and state.pt,
or inside a write, the run resumes to the uninterrupted run's weights bit for bit; temp files a killed run left go."""

import pytest
import torch
from safetensors.torch import load_file

import genlab
from genlab import checkpoint as ckpt
from genlab.config import build_run_config
from genlab.train import rundir
from genlab.train.curves import read_metrics
from genlab.train.trainer import Trainer


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def same_weights(a, b):
    for name in ("model.safetensors", "ema.safetensors"):
        x, y = load_file(str(a / name)), load_file(str(b / name))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


@pytest.fixture
def cfg(gauss_cfg):
    gauss_cfg["train"].update(ema_decay=0.9)
    return gauss_cfg


def test_killed_between_weights_and_state_resumes_exactly(tmp_path, cfg, monkeypatch):
    """The weights files of step 20 are written, the process dies before state.pt of step 20: the resume goes on from
    state.pt's step 10 (which holds its own weights), rewrites the weights files and ends where the full run ends."""
    full = genlab.train(cfg, run_dir=tmp_path / "full")
    save_state = ckpt.save_state

    def power_cut_at_20(path, state):
        if state["step"] == 20:
            raise RuntimeError("power cut")
        save_state(path, state)

    monkeypatch.setattr(ckpt, "save_state", power_cut_at_20)
    with pytest.raises(RuntimeError, match="power cut"):
        Trainer(build_run_config(cfg), tmp_path / "cut").fit()
    monkeypatch.setattr(ckpt, "save_state", save_state)
    assert int(ckpt.read_metadata(tmp_path / "cut" / "model.safetensors")["step"]) == 20
    assert ckpt.load_state(tmp_path / "cut" / "state.pt")["step"] == 10

    t = Trainer(build_run_config(cfg), tmp_path / "cut")
    assert t.step == 10 and int(ckpt.read_metadata(tmp_path / "cut" / "model.safetensors")["step"]) == 10
    t.fit()
    assert losses(tmp_path / "cut") == losses(full.run_dir)
    same_weights(tmp_path / "cut", full.run_dir)


def test_killed_inside_a_write_keeps_the_previous_file_and_cleans_up(tmp_path, cfg, monkeypatch):
    """A write that dies after its temp file is complete but before the rename leaves the old state.pt current and a
    temp file behind; the resume removes the temp file and ends where the full run ends."""
    full = genlab.train(cfg, run_dir=tmp_path / "full")
    replace = ckpt.os.replace

    def die_before_rename(src, dst):
        if str(dst).endswith("state.pt") and torch.load(src, weights_only=True)["step"] == 20:
            raise KeyboardInterrupt  # like SIGKILL: nothing after this line runs
        replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", die_before_rename)
    unlink = ckpt.os.unlink
    monkeypatch.setattr(ckpt.os, "unlink", lambda p: None)  # a killed process does not clean up either
    with pytest.raises(KeyboardInterrupt):
        Trainer(build_run_config(cfg), tmp_path / "cut").fit()
    monkeypatch.setattr(ckpt.os, "replace", replace)
    monkeypatch.setattr(ckpt.os, "unlink", unlink)
    run = tmp_path / "cut"
    left = sorted(p.name for p in run.glob(".*.tmp"))
    assert len(left) == 1 and left[0].startswith(".state.pt.")
    assert ckpt.load_state(run / "state.pt")["step"] == 10
    rundir.release(run)  # a new process: the killed one's lock went with it
    genlab.train(cfg, run_dir=run)
    assert not list(run.glob(".*.tmp"))
    assert losses(run) == losses(full.run_dir)
    same_weights(run, full.run_dir)


def test_stale_temp_files_of_other_programs_are_left_alone(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".model.safetensors.abc.tmp").write_bytes(b"half")
    (run / ".thesis.tex.swp.tmp").write_bytes(b"mine")
    assert rundir.remove_stale_temp_files(run) == [".model.safetensors.abc.tmp"]
    assert sorted(p.name for p in run.iterdir()) == [".thesis.tex.swp.tmp"]


def test_readers_never_see_a_half_written_checkpoint(tmp_path, cfg):
    """`genlab sample` / `eval` may read a run while it trains: with a checkpoint every step, a reader polling the
    weights and the state never finds a file cut short (each is renamed into place whole)."""
    import threading

    run = tmp_path / "run"
    cfg["train"].update(ckpt_every=1, max_steps=60)
    stop, reads, errors = threading.Event(), [0], []

    def reader():
        while not stop.is_set():
            try:
                if (run / "state.pt").exists():
                    assert ckpt.load_state(run / "state.pt")["step"] >= 1
                    ckpt.load_weights(run / "model.safetensors", genlab.load(run, ema=False))
                    reads[0] += 1
            except Exception as e:  # any failure is what this test looks for
                errors.append(repr(e))

    t = threading.Thread(target=reader)
    t.start()
    try:
        genlab.train(cfg, run_dir=run)
    finally:
        stop.set()
        t.join()
    assert reads[0] > 5 and errors == []
