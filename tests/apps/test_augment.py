"""`genlab augment`: a fixed classifier on real, real + synthetic and synthetic data; export; bad input; the CLI."""

import argparse
import json

import numpy as np
import pytest
import torch

import genlab
from genlab.apps.augment import SETTINGS, add_parser, augment, balanced_subset, train_classifier
from genlab.config import DataConfig, build_run_config
from genlab.data.base import ArrayDataset
from genlab.data.transforms import from_unit_range
from genlab.errors import CheckpointError, ConfigError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

FRACTION = 0.0625  # of test_images' 512 training images: 8 per class, 32 in all


@register_dataset("test_labelled_vectors")
def _vectors(cfg: DataConfig, split: str) -> ArrayDataset:
    """3 classes of 2D points around (-2, 0), (0, 2), (2, 0); 300 (train) / 90 (test)."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = 300 if split == "train" else 90
    y = torch.arange(n) % 3
    centres = torch.tensor([[-2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    x = centres[y] + 0.3 * torch.randn(n, 2, generator=g)
    return ArrayDataset(x, y, DataSpec((2,), num_classes=3, encoding="continuous"), "test_labelled_vectors")


def _train(path, data, steps=60, **model):
    cfg = {
        "data": data,
        "model": {"name": "test_gaussian", **model},
        "train": {
            "batch_size": 32,
            "max_steps": steps,
            "lr": 0.05,
            "warmup_steps": 5,
            "log_every": 20,
            "progress": False,
            "num_threads": 1,
        },
    }
    genlab.train(cfg, run_dir=path)
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets run fastest on one thread (and far faster than on two busy cores); the trainer sets it, we restore it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cond_run(one_thread, tmp_path_factory):
    """A class-conditional Gaussian trained on the 4-class 8x8 test images: its class means differ in brightness."""
    return _train(tmp_path_factory.mktemp("augment") / "cond", {"name": "test_images"}, conditional=True)


def test_three_settings_counts_and_export(cond_run, tmp_path):
    res = augment(cond_run, real_fraction=FRACTION, steps=150, out=tmp_path / "syn.npz")
    n_real, n_syn = 32, 320  # default: 10x the real subset
    expected = {"real": (n_real, 0), "real+synthetic": (n_real, n_syn), "synthetic": (0, n_syn)}
    for name, counts in expected.items():
        assert (res[name]["n_real"], res[name]["n_synthetic"]) == counts
        assert 0 <= res[name]["accuracy"] <= 1
    assert res["n_test"] == 128 and res["export"] == str(tmp_path / "syn.npz")
    assert res["synthetic"]["accuracy"] > 0.8  # chance is 0.25: the samples carry their class
    assert json.loads((cond_run / "augment.json").read_text()) == res

    data = np.load(tmp_path / "syn.npz")
    assert data["images"].dtype == np.uint8 and data["images"].shape == (n_syn, 1, 8, 8)
    assert np.bincount(data["labels"]).tolist() == [n_syn // 4] * 4
    x, _ = genlab.sample(cond_run, n_syn, seed=0)  # the exported (= trained-on) data are the run's samples, stored as uint8
    assert np.array_equal(data["images"], from_unit_range(x).numpy())


def test_deterministic_under_seed(cond_run, tmp_path):
    runs = [
        augment(cond_run, real_fraction=FRACTION, n_synthetic=40, steps=40, seed=s, out=tmp_path / f"{i}.npz")
        for i, s in enumerate([3, 3, 4])
    ]
    assert [runs[0][k]["accuracy"] for k in SETTINGS] == [runs[1][k]["accuracy"] for k in SETTINGS]
    assert np.array_equal(np.load(tmp_path / "0.npz")["images"], np.load(tmp_path / "1.npz")["images"])
    assert not np.array_equal(np.load(tmp_path / "0.npz")["images"], np.load(tmp_path / "2.npz")["images"])
    # The classifier's weights and batches depend on the seed alone: the same data give the same net.
    spec, x, y = DataSpec((1, 8, 8), num_classes=4), torch.rand(50, 1, 8, 8), torch.arange(50) % 4
    nets = [train_classifier(x, y, spec, steps=5, seed=s).state_dict() for s in (0, 0, 1)]
    assert all(torch.equal(nets[0][k], nets[1][k]) for k in nets[0]) and not torch.equal(nets[0]["out.weight"], nets[2]["out.weight"])


def test_real_subset_is_class_balanced_and_seeded():
    y = torch.arange(100) % 4
    idx = balanced_subset(y, 5, 4, seed=0)
    assert len(idx) == 20 and len(set(idx.tolist())) == 20 and torch.bincount(y[idx]).tolist() == [5] * 4
    assert torch.equal(idx, balanced_subset(y, 5, 4, seed=0)) and not torch.equal(idx, balanced_subset(y, 5, 4, seed=1))
    with pytest.raises(ConfigError, match="class 3 has 0"):
        balanced_subset(torch.arange(30) % 3, 5, 4)


def test_vectors_use_an_mlp(tmp_path):
    run = _train(tmp_path / "vec", {"name": "test_labelled_vectors"}, steps=80, conditional=True)
    res = augment(run, real_fraction=0.05, steps=100, out=tmp_path / "vec.npz")
    assert res["classifier"]["net"].startswith("mlp") and res["real"]["n_real"] == 15 and res["synthetic"]["n_synthetic"] == 150
    assert res["synthetic"]["accuracy"] > 0.8
    data = np.load(tmp_path / "vec.npz")
    assert data["samples"].shape == (150, 2) and np.bincount(data["labels"]).tolist() == [50] * 3


def test_padded_run_trains_on_its_image_size(tmp_path):
    run = _train(tmp_path / "pad", {"name": "test_images", "pad_to": 12}, steps=10, conditional=True)
    res = augment(run, real_fraction=FRACTION, n_synthetic=20, steps=5, out=tmp_path / "pad.npz")
    assert np.load(tmp_path / "pad.npz")["images"].shape == (20, 1, 12, 12) and res["real+synthetic"]["n_real"] == 32


def test_unconditional_and_checkpointless_runs_are_refused(tmp_path):
    run = _train(tmp_path / "uncond", {"name": "test_images"}, steps=2)
    with pytest.raises(ConfigError, match="augmentation needs labelled samples.*model.conditional=true"):
        augment(run, steps=1)
    bare = tmp_path / "bare"
    bare.mkdir()
    cfg = {"data": {"name": "test_images"}, "model": {"name": "test_gaussian", "conditional": True}, "train": {"max_steps": 1}}
    (bare / "config.toml").write_text(build_run_config(cfg).to_toml())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        augment(bare, steps=1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"real_fraction": 0}, "--fraction"),
        ({"real_fraction": 1.5}, "--fraction"),
        ({"n_synthetic": 0}, "--n-synthetic"),
        ({"steps": 0}, "--steps"),
        ({"out": "samples.png"}, "as a .npz file"),
    ],
)
def test_bad_arguments_fail_before_any_work(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        augment(tmp_path / "not_a_run", **kwargs)  # the arguments are checked before the run is even looked at


def _parser():
    p = argparse.ArgumentParser(prog="genlab")
    add_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_cli(cond_run, tmp_path, capsys):
    argv = [
        "augment",
        str(cond_run),
        "--fraction",
        str(FRACTION),
        "--n-synthetic",
        "40",
        "--steps",
        "20",
        "--out",
        str(tmp_path / "cli.npz"),
    ]
    args = _parser().parse_args(argv)
    assert args.fn(args) == 0
    out = capsys.readouterr().out
    assert "real+synthetic" in out and " 40 " in out and "cli.npz" in out and "augment.json" in out
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["augment", "--help"])
    help_text = capsys.readouterr().out
    assert e.value.code == 0 and "usage: genlab augment" in help_text and "--n-synthetic" in help_text and "Ravuri" in help_text


def test_a_trained_model_is_augmented_like_its_loaded_run(cond_run, tmp_path):
    """`genlab.train(...).model` carries its run context: augment takes it as it takes the run directory."""
    resumed = genlab.train(genlab.load(cond_run).run.config, run_dir=cond_run)  # budget spent: returns the trained model
    assert resumed.status == "already done"
    kw = {"real_fraction": FRACTION, "n_synthetic": 40, "steps": 40, "seed": 3}
    from_model = augment(resumed.model, **kw)
    from_run = augment(cond_run, **kw)
    assert from_model["run"] is None and from_model["step"] == from_run["step"]
    for name in ("real", "real+synthetic", "synthetic"):
        assert from_model[name]["accuracy"] == from_run[name]["accuracy"]
