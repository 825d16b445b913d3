"""Mode coverage of the 2D Gaussian mixtures (the VEEGAN / PacGAN test): modes covered and the share of high-quality
samples, i.e. within 3 standard deviations of a mode, out of 2,500 samples (Srivastava et al. 2017; Lin et al. 2018)."""

from __future__ import annotations

from typing import Any

import torch

from genlab.data.toy2d import GaussianMixture2D, toy_distribution
from genlab.errors import ConfigError, did_you_mean
from genlab.metrics.toy import mode_coverage
from genlab.models.sampling import sample_seeded

MIXTURES = ("8gaussians", "25gaussians")
N_SAMPLES = 2500


def mixture_coverage(samples: torch.Tensor, name: str, n_std: float = 3.0) -> dict[str, Any]:
    """{"modes_covered", "n_modes", "high_quality"} of 2D samples (N, 2) against the mixture `name` (8gaussians or 25gaussians).

    A sample is high-quality within `n_std` standard deviations of its nearest centre; a mode is covered when it holds
    at least one high-quality sample. Pass 2,500 samples to match the published protocol (`N_SAMPLES`).

    >>> from genlab.data.toy2d import toy_distribution
    >>> x = toy_distribution("8gaussians").sample(2500, torch.Generator().manual_seed(0))
    >>> mixture_coverage(x, "8gaussians")["modes_covered"]
    8
    """
    if name not in MIXTURES:
        raise ConfigError(f"mode coverage needs a Gaussian mixture with known centres, got {name!r}.{did_you_mean(name, MIXTURES)}")
    return mixture_coverage_of(samples, toy_distribution(name), n_std)


def mixture_coverage_of(samples: torch.Tensor, dist: GaussianMixture2D, n_std: float = 3.0) -> dict[str, Any]:
    """`mixture_coverage` against a mixture given as a distribution."""
    covered, hq = mode_coverage(samples.double(), dist.centres, dist.std, n_std)
    return {"modes_covered": covered, "n_modes": len(dist.centres), "high_quality": hq}


@torch.no_grad()
def model_mode_coverage(model: Any, name: str, *, n: int = N_SAMPLES, seed: int = 0, **sample_kwargs: Any) -> dict[str, Any]:
    """`mixture_coverage` of `n` samples drawn from a trained model with `seed`."""
    x, _ = sample_seeded(model, n, seed=seed, **sample_kwargs)
    return {**mixture_coverage(x, name), "n_samples": n}
