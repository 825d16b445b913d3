"""The diffusion model from the command line: every sampler with guidance through `genlab sample`, the bound in bits/dim
through `genlab eval`, the samplers in `genlab list`, and a tiny end-to-end fit of 2D Gaussian data."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab
from genlab.cli import main


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    cfg = {
        "data": {"name": "test_images", "dequantize": False},
        "model": {"name": "diffusion", "channels": [8, 8], "attn_resolutions": [4], "heads": 2, "timesteps": 20, "conditional": True},
        "train": {"batch_size": 16, "max_steps": 3, "progress": False, "warmup_steps": 0, "n_samples": 4},
    }
    return genlab.train(cfg, run_dir=tmp_path_factory.mktemp("runs") / "cond", resume="never").run_dir


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "euler", "heun", "dpmpp_2m"])
def test_sample_every_sampler_with_guidance(cond_run, tmp_path, sampler):
    out = tmp_path / "s.npz"
    args = ["sample", str(cond_run), "--n", "4", "--sampler", sampler, "--steps", "3", "--guidance", "2.5", "--out", str(out)]
    assert main(args + (["--eta", "0.5"] if sampler == "ddim" else [])) == 0
    with np.load(out) as f:
        assert f["images"].shape == (4, 1, 8, 8) and f["images"].dtype == np.uint8 and f["labels"].tolist() == [0, 1, 2, 3]


def test_guidance_changes_the_samples(cond_run):
    model = genlab.load(cond_run)
    y = torch.arange(4)
    a = model.sample(4, labels=y, sampler="euler", steps=4, guidance=1.0, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, labels=y, sampler="euler", steps=4, guidance=4.0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)


def test_eval_reports_the_bound_in_bits_per_dim(cond_run, capsys):
    assert main(["eval", str(cond_run), "eval.sample_metrics=false", "eval.n_examples=8"]) == 0
    res = json.loads((cond_run / "eval.json").read_text())
    assert res["likelihood"] == "bound" and res["bound"] == "VLB" and 0 < res["bits_per_dim"] < float("inf")


def test_list_shows_the_samplers(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("ddpm", "ddim", "euler", "heun", "dpmpp_2m"):
        assert f"sampler  {name}" in out
    assert "diffusion" in out


@pytest.mark.slow
def test_fits_a_gaussian_end_to_end():
    """The MLP denoiser learns 2D Gaussian data well enough that its samples have the data's mean and covariance."""
    from genlab.config import build
    from genlab.models.diffusion import DiffusionConfig, DiffusionModel
    from genlab.spec import DataSpec

    torch.manual_seed(0)
    mu, L = torch.tensor([1.0, -1.0]), torch.tensor([[0.6, 0.0], [0.3, 0.3]])
    model = DiffusionModel(
        build(DiffusionConfig, {"width": 64, "depth": 2, "prediction": "v"}, "model"), DataSpec((2,), encoding="continuous")
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 500)
    for _ in range(500):
        x = mu + torch.randn(256, 2) @ L.T
        loss = model.loss({"x": x})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    s = model.eval().sample(4000, sampler="heun", steps=25, generator=torch.Generator().manual_seed(0))
    assert (s.mean(0) - mu).abs().max() < 0.1
    assert (torch.cov(s.T) - L @ L.T).abs().max() < 0.15


PRESETS = sorted((Path(__file__).resolve().parents[2] / "configs" / "diffusion").glob("*.toml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_build(preset):
    from genlab.config import build_run_config

    cfg = build_run_config(preset)
    assert cfg.model.name == "diffusion" and (cfg.train.max_time or cfg.train.max_steps)
