"""Configs: TOML round trip, overrides, and a clear error for every kind of bad input."""

import pytest

from genlab.config import RunConfig, build_run_config, coerce
from genlab.errors import ConfigError

BASE = {"data": {"name": "test_images"}, "model": {"name": "test_gaussian"}, "train": {"max_steps": 10}}


def test_overrides_are_typed():
    cfg = build_run_config(
        BASE, ["train.lr=3e-4", "train.betas=[0.5, 0.9]", "train.progress=false", "model.conditional=true", "data.pad_to=10"]
    )
    assert cfg.train.lr == 3e-4 and cfg.train.betas == (0.5, 0.9) and cfg.train.progress is False
    assert cfg.model.conditional is True and cfg.data.pad_to == 10


def test_toml_round_trip(tmp_path):
    cfg = build_run_config(BASE, ["train.grad_clip=0.5", "train.max_time=60"])
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    again = build_run_config(path)
    assert isinstance(again, RunConfig) and again == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrate=1", r"unknown key train.lrate.*Did you mean: lr"),
        ("train.batch_sise=3", r"unknown key train.batch_sise.*batch_size"),
        ("model.conditionl=true", r"unknown key model.conditionl.*conditional"),
        ("train.lr=fast", r"train.lr: expected float, got 'fast'"),
        ("train.lr=-1", r"train.lr: expected a value > 0"),
        ("train.batch_size=0", r"train.batch_size: expected a value >= 1"),
        ("train.schedule=linear", r"train.schedule: expected one of 'cosine', 'constant'"),
        ("train.max_steps=1.5", r"train.max_steps: expected int"),
        ("train.progress=maybe", r"train.progress: expected bool"),
        ("data.channels=2", r"data.channels: expected 1 or 3"),
        ("training.lr=1", r"expected section.key=value with section one of data, model, train, eval"),
        ("train.lr", r"expected section.key=value"),
        ("model.name=vea", r"unknown model 'vea'"),
        ("data.name=fashion_mnst", r"unknown dataset 'fashion_mnst'.*fashion_mnist"),
        ("train.batch_size=30", r"batch_size \(30\) must be divisible by train.grad_accum \(4\)"),
    ],
)
def test_bad_input_names_the_key(override, message):
    overrides = [override] + (["train.grad_accum=4"] if "grad_accum" in message else [])
    with pytest.raises(ConfigError, match=message):
        build_run_config(BASE, overrides)


def test_missing_budget_and_names():
    with pytest.raises(ConfigError, match="set a budget"):
        build_run_config({"data": {"name": "test_images"}, "model": {"name": "test_gaussian"}})
    with pytest.raises(ConfigError, match="missing key model.name"):
        build_run_config({"data": {"name": "test_images"}, "model": {}, "train": {"max_steps": 1}})
    with pytest.raises(ConfigError, match=r"unknown section \[trian\].*train"):
        build_run_config({**BASE, "trian": {}})


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_run_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_run_config(bad)


def test_coerce_optional_and_tuples():
    assert coerce("none_like", str | None, "k") == "none_like"
    assert coerce(None, int | None, "k") is None
    assert coerce("none", float | None, "k") is None  # unsets an optional key from the command line
    assert coerce("[32, 64]", tuple[int, ...], "k") == (32, 64)
    with pytest.raises(ConfigError, match=r"k\[1\]: expected int"):
        coerce([1, "x"], tuple[int, ...], "k")
