"""torchrun with 2 CPU processes (gloo): ranks stay in sync, only rank 0 writes, and the run
matches a single-process run with the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genlab.train.curves import read_metrics

SCRIPT = str(Path(__file__).parents[1] / "_train_cli.py")
ARGS = [
    "data.name=test_images",
    "model.name=test_gaussian",
    "train.batch_size=32",
    "train.max_steps=20",
    "train.lr=0.05",
    "train.log_every=5",
    "train.ckpt_every=10",
    "train.progress=false",
    "train.ema_decay=0.9",
]


def free_port() -> int:
    """A port nobody listens on now: a fixed one can still be held (TIME_WAIT) by an earlier run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), *args]


def run(cmd, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.slow
def test_two_process_run_matches_single_process(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[data]\nname = "test_images"\n[model]\nname = "test_gaussian"\n[train]\nmax_steps = 20\n')
    run([sys.executable, SCRIPT, "train", str(cfg), *ARGS, "train.num_threads=1", "--run", str(tmp_path / "single")], tmp_path)
    run(
        torchrun(
            SCRIPT,
            "train",
            str(cfg),
            *ARGS,
            "train.num_threads=1",
            "--run-dir",
            str(tmp_path / "ddp"),
        ),
        tmp_path,
    )
    single, ddp = read_metrics(tmp_path / "single" / "metrics.jsonl"), read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    s_loss = [(r["step"], r["loss"]) for r in single if "loss" in r]
    d_loss = [(r["step"], r["loss"]) for r in ddp if "loss" in r]
    assert [s for s, _ in s_loss] == [s for s, _ in d_loss] == [5, 10, 15, 20]
    for (_, a), (_, b) in zip(s_loss, d_loss):
        assert a == pytest.approx(b, rel=1e-5)
    for name in ["model.safetensors", "ema.safetensors"]:
        a, b = load_file(str(tmp_path / "single" / name)), load_file(str(tmp_path / "ddp" / name))
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-5), k


@pytest.mark.slow
def test_ranks_stay_in_sync_and_only_rank0_writes(tmp_path):
    """Each rank dumps its final weights next to (not inside) the run; they must be identical."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[data]\nname = "test_images"\n[model]\nname = "test_twophase"\n[train]\nmax_steps = 6\n')
    dump = tmp_path / "dump.py"
    dump.write_text(
        "import os, sys, torch\n"
        f"sys.path.insert(0, {str(Path(SCRIPT).parent)!r})\n"
        "import _models\n"
        "from genlab.config import build_run_config\n"
        "from genlab.train.trainer import Trainer\n"
        f"t = Trainer(build_run_config({str(cfg)!r}, sys.argv[2:]), sys.argv[1])\n"
        "t.fit()\n"
        "torch.save(t.model.state_dict(), f'{sys.argv[1]}.rank{t.dist.rank}.pt')\n"
    )
    run(
        torchrun(
            str(dump),
            str(tmp_path / "run"),
            "train.batch_size=16",
            "train.log_every=2",
            "train.progress=false",
            "train.num_threads=1",
        ),
        tmp_path,
    )
    r0, r1 = torch.load(tmp_path / "run.rank0.pt"), torch.load(tmp_path / "run.rank1.pt")
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 3  # one writer: 3 lines, not 6
