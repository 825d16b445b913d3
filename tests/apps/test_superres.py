"""`genlab superres`: PSNR and SSIM against known values, the model uses its low-resolution input, and the CLI reports
both methods on a tiny trained super-resolution model."""

import json
import math

import pytest
import torch

from _models import tiny_diffusion_run
from genlab.apps.superres import bicubic, psnr, ssim, superres
from genlab.cli import main
from genlab.errors import ConfigError


def test_psnr_and_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    noise = 0.1 * torch.randn(x.shape, generator=g)
    mse = noise.double().pow(2).flatten(1).mean(1)
    assert torch.allclose(psnr(x + noise, x), 10 * torch.log10(4 / mse))
    assert torch.allclose(ssim(x, x), torch.ones(4, dtype=torch.float64))
    s1, s2 = ssim(x + noise, x), ssim(x + 3 * noise, x)
    assert torch.all(s1 < 1) and torch.all(s2 < s1)
    # A constant offset changes only the luminance term: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) on flat images.
    a, b = torch.full((1, 1, 8, 8), 0.0), torch.full((1, 1, 8, 8), 0.5)  # 0.5 and 0.75 in [0, 1]
    expected = (2 * 0.5 * 0.75 + 1e-4) / (0.25 + 0.5625 + 1e-4)
    assert ssim(a, b).item() == pytest.approx(expected)
    assert math.isclose(bicubic(torch.zeros(1, 1, 4, 4), (8, 8)).abs().max().item(), 0.0)


def test_superres_cli_and_api(tmp_path):
    run = tiny_diffusion_run(tmp_path / "run", lowres=2)
    out = tmp_path / "sr.png"
    assert main(["superres", str(run), "--n", "6", "--steps", "3", "--out", str(out)]) == 0
    res = json.loads((run / "superres.json").read_text())
    assert out.is_file() and res["from"] == [4, 4] and res["to"] == [8, 8] and res["n"] == 6
    for k in ("psnr_diffusion", "psnr_bicubic", "ssim_diffusion", "ssim_bicubic"):
        assert math.isfinite(res[k])
    r = superres(run, n=4, steps=2, sampler="euler")
    assert r["sampler"] == "euler" and r["steps"] == 2


def test_superres_needs_a_lowres_model(tmp_path):
    run = tiny_diffusion_run(tmp_path / "plain")
    with pytest.raises(ConfigError, match="lowres"):
        superres(run, n=2)
