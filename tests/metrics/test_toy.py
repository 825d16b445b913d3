"""Toy-data metrics: unbiased MMD, NLL under the true density, mode coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.metrics import mmd, mode_coverage, nll_under


def _brute_mmd(x: np.ndarray, y: np.ndarray, sigmas: list[float]) -> float:
    def k(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        d2 = ((p[:, None] - q[None]) ** 2).sum(-1)
        return np.mean([np.exp(-d2 / (2 * s**2)) for s in sigmas], axis=0)

    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * k(x, y).mean()


def test_mmd_matches_formula_and_batch_size() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 2)), rng.normal(0.5, 1.0, size=(45, 2))
    expected = _brute_mmd(x, y, [0.5, 1.0, 2.0])
    assert mmd(x, y, [0.5, 1.0, 2.0]) == pytest.approx(expected, rel=1e-10)
    assert mmd(x, y, [0.5, 1.0, 2.0], batch_size=7) == pytest.approx(expected, rel=1e-10)
    assert mmd(x, y, 1.0) == pytest.approx(_brute_mmd(x, y, [1.0]), rel=1e-10)


def test_mmd_zero_in_expectation_for_same_distribution() -> None:
    rng = np.random.default_rng(1)
    same = [mmd(rng.normal(size=(100, 2)), rng.normal(size=(100, 2))) for _ in range(20)]
    diff = mmd(rng.normal(size=(100, 2)), rng.normal(0.0, 2.0, size=(100, 2)))
    assert abs(np.mean(same)) < 3 * np.std(same) / math.sqrt(len(same))
    assert diff > 10 * np.std(same)


def test_nll_under_known_density() -> None:
    samples = torch.randn(1000, 2, dtype=torch.float64)
    log_prob = lambda x: torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(-1)
    expected = -log_prob(samples).mean().item()
    assert nll_under(log_prob, samples, batch_size=128) == pytest.approx(expected, rel=1e-12)


def test_mode_coverage_counts_modes_and_quality() -> None:
    angles = torch.arange(8) * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
    g = torch.Generator().manual_seed(0)
    good = centres[:5].repeat_interleave(20, 0) + 0.01 * torch.randn(100, 2, generator=g)
    far = torch.zeros(25, 2)  # the centre of the ring, far from every mode (std 0.02 is twice the spread above)
    assert mode_coverage(good, centres, std=0.02) == (5, 1.0)
    covered, quality = mode_coverage(torch.cat([good, far]), centres, std=0.02)
    assert covered == 5 and quality == pytest.approx(100 / 125)
    assert mode_coverage(good, centres, std=0.02, min_samples=21)[0] == 0
