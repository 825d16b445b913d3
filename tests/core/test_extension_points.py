"""Hooks later families use without touching the core: sampler options from the CLI, phases that
start late (two-stage models), diagnose() warnings in the log, apps discovered as subcommands."""

import json

import pytest
import torch

import genlab
from genlab.cli import build_parser, main, sampler_options
from genlab.errors import ConfigError


def _run(tmp_path, *extra):
    cfg = {"data": {"name": "test_images"}, "model": {"name": "test_twophase"}, "train": {"max_steps": 10, "progress": False}}
    return genlab.train(cfg, ["train.batch_size=16", "train.log_every=1", "train.ema_decay=0", *extra], run_dir=tmp_path / "run")


def test_phase_with_start_fraction_waits_for_its_share_of_the_budget(tmp_path):
    torch.manual_seed(0)
    res = _run(tmp_path, "model.g_start=0.5")
    rows = [json.loads(s) for s in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    g_steps = [r["step"] for r in rows if "g/loss" in r]
    d_steps = [r["step"] for r in rows if "d/loss" in r]
    assert d_steps == list(range(1, 11))
    assert g_steps == list(range(6, 11))  # spent = step/10 >= 0.5 from the 6th step on


def test_diagnose_warnings_are_logged(tmp_path, capsys):
    res = _run(tmp_path, "model.warn_above=-1")  # every row trips it
    rows = [json.loads(s) for s in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    warnings = [r for r in rows if r.get("event") == "warning"]
    assert len(warnings) == 10 and "critic loss" in warnings[0]["message"]
    assert "genlab: warning at step 1" in capsys.readouterr().err
    res2 = _run(tmp_path / "b", "model.warn_above=1e9")
    assert not [s for s in (res2.run_dir / "metrics.jsonl").read_text().splitlines() if "warning" in s]


def test_sampler_options_from_the_command_line():
    argv = ["sample", "r", "--out", "x.png", "--sampler", "heun", "--steps", "18", "-o", "rho=7.0", "-o", "name=abc"]
    a = build_parser().parse_args(argv)
    assert sampler_options(a) == {"sampler": "heun", "steps": 18, "rho": 7.0, "name": "abc"}
    a = build_parser().parse_args(["eval", "r", "--guidance", "2.5"])
    assert sampler_options(a) == {"guidance": 2.5}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        sampler_options(build_parser().parse_args(["sample", "r", "--out", "x.png", "-o", "oops"]))


def test_unknown_sampler_option_names_the_valid_ones(tmp_path, capsys):
    cfg = {"data": {"name": "moons", "n_train": 256, "n_test": 256}, "model": {"name": "vae", "latent_dim": 2}}
    res = genlab.train(cfg, ["train.max_steps=2", "train.progress=false"], run_dir=tmp_path / "vae")
    x, _ = genlab.sample(res.run_dir, 5, temperature=0.5)
    assert x.shape == (5, 2)
    assert main(["sample", str(res.run_dir), "--out", str(tmp_path / "s.npz"), "-o", "temperatur=0.5"]) == 2
    err = capsys.readouterr().err
    assert "no option 'temperatur'" in err and "temperature" in err


def test_apps_are_discovered_as_subcommands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "augment" in sub.choices
