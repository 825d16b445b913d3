"""`genlab export`: a self-contained model folder that genlab.load reads, and the same folder through the Hugging
Face Hub's cache with no network (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genlab
from genlab.apps.export import export
from genlab.cli import main


@pytest.fixture
def run(tmp_path, gauss_cfg):
    res = genlab.train(gauss_cfg, ["train.ema_decay=0.9", "eval.n_samples=100"], run_dir=tmp_path / "run")
    genlab.evaluate(res.run_dir)
    return res.run_dir


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_exported_folder_loads_as_the_run(run, tmp_path, capsys):
    assert main(["export", str(run), str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.toml", "eval.json", "model.safetensors", "samples.png"]
    assert same_weights(genlab.load(out), genlab.load(run))  # the EMA weights, as genlab.load(run) reads them
    card = (out / "README.md").read_text()
    nll = json.loads((run / "eval.json").read_text())["nll"]
    assert card.startswith("---\nlibrary_name: genlab") and f"| nll | {nll:.6g} |" in card
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0
    assert main(["export", str(run), str(out)]) == 2  # a folder that is not empty is not overwritten
    assert "is not empty" in capsys.readouterr().err


def test_load_from_the_hub_cache_offline(run, tmp_path):
    folder = export(run, tmp_path / "out")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--genlab-test--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in folder.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _models, genlab, torch\n"
        "m = genlab.load('hf:genlab-test/tiny'); print(float(m.mu.detach().sum()))\n"
        "try:\n    genlab.load('hf:genlab-test/missing')\nexcept genlab.CheckpointError as e:\n    print('refused:', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    tests = str(Path(__file__).parents[1])
    proc = subprocess.run([sys.executable, "-c", code, tests], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert float(lines[0]) == pytest.approx(float(genlab.load(run).mu.detach().sum()))
    assert lines[1].startswith("refused: hf:genlab-test/missing: not in the local cache")
