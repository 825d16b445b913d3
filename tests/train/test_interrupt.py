"""Ctrl-C saves a checkpoint and exits cleanly; running the same command resumes exactly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab import checkpoint as ckpt
from genlab.train.curves import read_metrics

SCRIPT = str(Path(__file__).parents[1] / "_train_cli.py")


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_matches(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        '[data]\nname = "test_images"\n[model]\nname = "test_gaussian"\n'
        "[train]\nmax_steps = 4000\nbatch_size = 32\nlr = 0.01\nlog_every = 50\nckpt_every = 100000\nprogress = false\nnum_threads = 1\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    full = subprocess.run(
        [sys.executable, SCRIPT, "train", str(cfg), "--run", str(tmp_path / "full")], env=env, capture_output=True, text=True, timeout=300
    )
    assert full.returncode == 0, full.stderr

    p = subprocess.Popen(
        [sys.executable, SCRIPT, "train", str(cfg), "--run", str(tmp_path / "cut")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted at step" in err and (tmp_path / "cut" / "interrupted").exists()
    step = ckpt.load_state(tmp_path / "cut" / "state.pt")["step"]
    assert 150 <= step < 4000

    again = subprocess.run(
        [sys.executable, SCRIPT, "train", str(cfg), "--run", str(tmp_path / "cut")], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    key = lambda rows: [(r["step"], r["loss"]) for r in rows if "loss" in r]
    assert key(read_metrics(tmp_path / "cut" / "metrics.jsonl")) == key(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    assert not (tmp_path / "cut" / "interrupted").exists()
