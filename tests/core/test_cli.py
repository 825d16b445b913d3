"""The CLI mirrors the API: train, sample (.png / .npz), eval, list, info, and --help for each."""

import json

import numpy as np
import pytest

from genlab.cli import main

ARGS = [
    "data.name=test_images",
    "model.name=test_gaussian",
    "train.max_steps=20",
    "train.batch_size=32",
    "train.progress=false",
    "train.log_every=5",
]


@pytest.fixture
def preset(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(
        '[data]\nname = "test_images"\n\n[model]\nname = "test_gaussian"\nconditional = true\n\n'
        "[train]\nmax_steps = 20\nbatch_size = 32\nprogress = false\n"
    )
    return p


@pytest.mark.parametrize("cmd", ["train", "sample", "eval", "list", "info", "report", "augment"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "usage: genlab " + cmd in capsys.readouterr().out


def test_train_sample_eval_info(preset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(preset)]) == 0  # default run directory: runs/<preset name>
    run = tmp_path / "runs" / "tiny"
    assert (run / "model.safetensors").is_file()
    assert main(["sample", str(run), "--n", "10", "--out", str(tmp_path / "s.npz"), "--seed", "3"]) == 0
    data = np.load(tmp_path / "s.npz")
    assert data["images"].shape == (10, 1, 8, 8) and data["images"].dtype == np.uint8
    assert data["labels"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert main(["sample", str(run), "--n", "4", "--labels", "2", "--out", str(tmp_path / "s2.npz")]) == 0
    assert np.load(tmp_path / "s2.npz")["labels"].tolist() == [2, 2, 2, 2]
    assert main(["sample", str(run), "--n", "8", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 100
    with pytest.warns(UserWarning, match="need at least 2000 samples"):
        assert main(["eval", str(run), "eval.n_samples=400"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["likelihood"] == "exact" and ev["nll"] > 0 and 0 < ev["bits_per_dim"] < 16
    for key in ["fid", "kid", "precision", "recall", "density", "coverage", "accuracy", "seconds_per_sample"]:
        assert isinstance(ev[key], float), key
    assert len(ev["per_class"]) == 4 and ev["conventions"]["samples"]["features"] == "test_images"
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 20 and info["model"] == "test_gaussian" and info["parameters"] == 4 * 64 + 64


def test_list(capsys):
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "model    test_gaussian" in out and "dataset  test_images" in out and "model.conditional" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope.toml"], "does not exist"),
        (["sample", "no_run", "--out", "x.png"], "does not exist"),
        (["eval", "no_run"], "no checkpoint"),
    ],
)
def test_errors_are_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("genlab: error:") and message in err and "Traceback" not in err


def test_bad_override_from_cli(preset, capsys):
    assert main(["train", str(preset), "train.batch_sise=3"]) == 2
    assert "unknown key train.batch_sise. Did you mean: batch_size?" in capsys.readouterr().err


def test_sample_out_suffix(preset, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["train", str(preset)])
    assert main(["sample", "runs/tiny", "--out", "x.jpg"]) == 2
    assert "expected a .png or .npz" in capsys.readouterr().err
