"""Outputs a user reads: strict JSON in eval.json, no "bound" label on an exact likelihood, each modality's headline
numbers in the report, warnings as one line, `genlab list -v` with every section, a damaged sibling file reported."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import genlab
from genlab.cli import main
from genlab.evaluation import strict
from genlab.report.html import write_report


def test_non_finite_numbers_become_null_with_a_reason():
    out = strict({"nll": 1.0, "samples_true_nll": math.inf, "per_class": [{"fid": math.nan}], "conventions": {}})
    assert out["samples_true_nll"] is None and out["per_class"][0]["fid"] is None
    assert out["conventions"]["not_finite"] == {"samples_true_nll": "inf", "per_class[0].fid": "nan"}
    json.dumps(out, allow_nan=False)  # strict JSON: raises on NaN / Infinity


def test_exact_model_eval_is_strict_json_without_a_bound_label(tmp_path, gauss_cfg):
    run = genlab.train(gauss_cfg, ["eval.n_samples=100"], run_dir=tmp_path / "run").run_dir
    cli = Path(__file__).parents[1] / "_train_cli.py"  # the CLI with the test models registered
    proc = subprocess.run([sys.executable, str(cli), "eval", str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "genlab: warning: eval.n_samples=100" in proc.stderr and "UserWarning" not in proc.stderr  # one readable line
    text = (run / "eval.json").read_text()
    ev = json.loads(text, parse_constant=lambda c: pytest.fail(f"eval.json holds {c}, which is not JSON"))
    assert ev["likelihood"] == "exact" and "bound" not in ev


def test_report_shows_the_modality_headline(tmp_path):
    cfg = {
        "data": {"name": "8gaussians", "n_train": 2048, "n_test": 512},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 256, "max_steps": 5, "progress": False, "warmup_steps": 0},
        "eval": {"n_samples": 2500},
    }
    run = genlab.train(cfg, run_dir=tmp_path / "run").run_dir
    ev = genlab.evaluate(run)
    html = write_report([run], tmp_path / "report")["html"].read_text()
    assert f"modes {ev['modes_covered']}/8" in html and "high-quality" in html


def test_list_verbose_lists_every_section(capsys):
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    for key in ("data.dequantize", "train.batch_size", "train.loggers", "eval.n_samples", "model.latent_dim", "sample: temperature"):
        assert key in out
    assert "modality image" in out


def test_a_damaged_weights_file_beside_the_one_read_is_reported(tmp_path, gauss_cfg):
    run = genlab.train(gauss_cfg, ["train.ema_decay=0.9"], run_dir=tmp_path / "run").run_dir
    data = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="model.safetensors is damaged"):
        genlab.load(run)  # reads ema.safetensors
    with pytest.raises(genlab.CheckpointError, match="truncated or corrupt"):
        genlab.load(run, ema=False)
