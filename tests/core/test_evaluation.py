"""`genlab eval` on 2D toy data and its bad-input errors."""

import json

import pytest

import genlab
from genlab.errors import DataError


def test_toy_eval_reports_mmd_true_nll_and_kl_gap(tmp_path):
    cfg = {
        "data": {"name": "8gaussians", "n_train": 2048, "n_test": 512},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 256, "max_steps": 60, "lr": 0.05, "progress": False, "num_threads": 1},
    }
    run = genlab.train(cfg, run_dir=tmp_path / "run").run_dir
    ev = genlab.evaluate(run, ["eval.n_samples=1000"])
    assert json.loads((run / "eval.json").read_text())["mmd"] == pytest.approx(ev["mmd"])
    # One Gaussian cannot fit 8 modes: its NLL is above the data's entropy, and its samples are unlikely under the data.
    assert ev["true_nll"] == pytest.approx(-2.907, abs=0.05)  # log 8 + log(2 pi e 0.02^2) = 2.079 - 4.986
    assert ev["kl_gap"] == pytest.approx(ev["nll"] - ev["true_nll"]) and ev["kl_gap"] > 1
    assert ev["mmd"] > 0.01 and ev["samples_true_nll"] > ev["true_nll"]


def test_samples_that_do_not_fit_the_feature_network(tmp_path, gauss_cfg):
    run = genlab.train(gauss_cfg, run_dir=tmp_path / "run").run_dir
    with pytest.raises(DataError, match=r"samples of shape \(1, 8, 8\) do not fit the feature network 'fashion_mnist'"):
        genlab.evaluate(run, ["eval.features=fashion_mnist", "eval.n_samples=100"])


def test_image_data_without_feature_network_skips_sample_metrics(tmp_path, gauss_cfg, monkeypatch):
    from genlab import registry

    monkeypatch.delitem(registry._FEATURES, "test_images")
    run = genlab.train(gauss_cfg, run_dir=tmp_path / "run").run_dir
    with pytest.warns(UserWarning, match="sample metrics skipped: no feature network for 'test_images'"):
        ev = genlab.evaluate(run, ["eval.n_samples=100"])
    assert "fid" not in ev and "skipped" in ev["conventions"]["samples"] and ev["nll"] > 0
