"""Mode coverage on the 2D Gaussian mixtures: exact on the true distribution, collapse detected, bad names refused."""

import math

import pytest
import torch

from genlab.data.toy2d import toy_distribution
from genlab.errors import ConfigError
from genlab.metrics.modes import N_SAMPLES, mixture_coverage


@pytest.mark.parametrize("name, k", [("8gaussians", 8), ("25gaussians", 25)])
def test_true_samples_cover_every_mode_with_the_3_sigma_share(name, k):
    x = toy_distribution(name).sample(N_SAMPLES, torch.Generator().manual_seed(0))
    out = mixture_coverage(x, name)
    # In 2D, P(||eps|| <= 3 sigma) = 1 - exp(-9/2) = 0.9889 (a chi distribution with 2 degrees of freedom).
    assert out["modes_covered"] == out["n_modes"] == k
    assert out["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.006)


def test_collapse_and_off_support_samples_are_counted():
    d = toy_distribution("25gaussians")
    one_mode = d.centres[3].float() + 0.01 * torch.randn(N_SAMPLES, 2)
    assert mixture_coverage(one_mode, "25gaussians")["modes_covered"] == 1
    between = d.centres.float()[:20] + 1.0  # halfway between grid points: no sample is high-quality
    out = mixture_coverage(between, "25gaussians")
    assert out["modes_covered"] == 0 and out["high_quality"] == 0.0


def test_unknown_mixture():
    with pytest.raises(ConfigError, match="Did you mean: 8gaussians"):
        mixture_coverage(torch.zeros(3, 2), "8gausians")
