"""`genlab inpaint`: RePaint's jump schedule, resampling that pulls the filled part towards the exact conditional of
Gaussian data, known pixels kept, and the CLI on a tiny trained model."""

import pytest
import torch

import genlab
from _gaussian import GaussianDenoiser
from _models import tiny_diffusion_run
from genlab.apps.inpaint import make_mask, repaint, repaint_schedule
from genlab.cli import main
from genlab.errors import ConfigError


def test_jump_schedule():
    path = repaint_schedule(50, jump_length=10, resample=10)
    steps = list(zip(path, path[1:]))
    assert path[0] == 0 and path[-1] == 50 and all(abs(b - a) == 1 for a, b in steps)
    down = sum(b > a for a, b in steps)
    assert down == 50 + 4 * 9 * 10 and len(steps) - down == 4 * 9 * 10  # 4 jump points (10, 20, 30, 40), 9 jumps of 10 each
    assert repaint_schedule(50, 10, 1) == list(range(51))  # resample = 1: plain reverse process
    with pytest.raises(ConfigError):
        repaint_schedule(10, 0, 2)


def test_resampling_approaches_the_exact_conditional():
    """x = (x1, x2) ~ N(mu, Sigma) with correlation 0.9; x1 = 1.5 known: x2 | x1 is N(mu2 + 0.9 (1.5 - mu1), 0.19)."""
    mu = torch.tensor([0.5, -0.5], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    den = GaussianDenoiser(mu, cov, sigma_max=100.0)
    x0 = torch.tensor([[1.5, 0.0]], dtype=torch.float64).repeat(4000, 1)
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64)
    exact_mean, exact_var = -0.5 + 0.9 * 1.0, 0.19
    err = {}
    for r in (1, 10):
        out = repaint(den, x0, mask, steps=50, jump_length=5, resample=r, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[:, 0], x0[:, 0])  # the known coordinate is the input's
        err[r] = (abs(out[:, 1].mean().item() - exact_mean), abs(out[:, 1].var().item() - exact_var))
    assert err[10][0] < err[1][0] / 3 and err[10][0] < 0.08 and err[10][1] < 0.05, err


def test_masks():
    for kind in ("center", "left", "right", "top", "bottom"):
        m = make_mask(kind, (1, 8, 8))
        assert set(m.unique().tolist()) == {0.0, 1.0}
    assert make_mask("center", (1, 8, 8))[0, 4, 4] == 0 and make_mask("left", (1, 8, 8))[0, 0, 0] == 0
    with pytest.raises(ConfigError, match="--mask"):
        make_mask("circle", (1, 8, 8))


def test_cli(tmp_path):
    run = tiny_diffusion_run(tmp_path / "run")
    out = tmp_path / "inpaint.png"
    assert main(["inpaint", str(run), "--n", "3", "--steps", "6", "--jump-length", "2", "--resample", "2", "--out", str(out)]) == 0
    assert out.is_file()
    res = genlab.apps.inpaint.inpaint(run, n=2, steps=4, jump_length=2, resample=2, mask="left")
    m = res["mask"].bool().expand_as(res["original"])
    assert torch.equal(res["inpainted"][m], res["original"][m].clamp(-1, 1))
