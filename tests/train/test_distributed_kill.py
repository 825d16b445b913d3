"""torchrun with one rank SIGKILLed (issue 19, item 1): the whole job stops (torchrun's agent ends the other rank, which
never hangs in gloo), and a relaunch resumes from the last checkpoint to the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genlab import checkpoint as ckpt
from genlab.train.curves import read_metrics

SCRIPT = str(Path(__file__).parents[1] / "_train_cli.py")
ARGS = [
    "data.name=test_images",
    "model.name=test_gaussian",
    "train.batch_size=32",
    "train.max_steps=40",
    "train.lr=0.05",
    "train.log_every=1",
    "train.ckpt_every=10",
    "train.progress=false",
    "train.ema_decay=0.9",
    "train.num_threads=1",
]
STOP_LIMIT = 60  # seconds: torchrun's agent notices a dead worker within its monitor interval, then ends the rest


def torchrun(cfg, run_dir):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--monitor-interval", "0.2"]
    return [*launcher, SCRIPT, "train", str(cfg), *ARGS, "--run-dir", str(run_dir)]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}


def worker(launcher: int, rank: int) -> int | None:
    """The PID of the worker of rank `rank` that torchrun (PID `launcher`) started."""
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                if f"RANK={rank}".encode() in (d / "environ").read_bytes().split(b"\0"):
                    return int(d.name)
        except (OSError, ValueError, IndexError):
            pass
    return None


def last_step(run_dir):
    path = run_dir / "metrics.jsonl"
    return max((r["step"] for r in read_metrics(path) if "loss" in r), default=0) if path.is_file() else 0


@pytest.mark.slow  # three torchrun launches of two processes: ~30-40 s on 2 cores, most of it start-up
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc (Linux)")
def test_a_killed_rank_stops_the_job_and_a_relaunch_resumes_exactly(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[data]\nname = "test_images"\n[model]\nname = "test_gaussian"\n')
    ref = subprocess.run(torchrun(cfg, tmp_path / "ref"), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        torchrun(cfg, cut), cwd=tmp_path, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        while last_step(cut) <= 12 and proc.poll() is None and time.time() < deadline:  # past the checkpoint of step 10
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the kill"
        pid = worker(proc.pid, rank=1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        t0 = time.time()
        proc.wait(timeout=STOP_LIMIT)  # never hangs: TimeoutExpired fails the test
        assert proc.returncode != 0
        stopped = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker outlived the job (it would hold the run's lock)
        os.killpg(proc.pid, 0)
    state = ckpt.load_state(cut / "state.pt")
    assert 10 <= state["step"] < 40 and last_step(cut) - state["step"] <= 10, (state["step"], last_step(cut))

    again = subprocess.run(torchrun(cfg, cut), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"from step {state['step']}" in again.stderr
    for name in ["model.safetensors", "ema.safetensors"]:
        a, b = load_file(str(tmp_path / "ref" / name)), load_file(str(cut / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert stopped < STOP_LIMIT
