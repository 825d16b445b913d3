"""FID against pytorch-fid's algorithm, restated here, and against the closed form for Gaussians."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy
import torch
from scipy import linalg

from genlab.metrics import fid, fid_from_stats, frechet_distance, gaussian_stats


def _sqrtm_quiet(a: np.ndarray) -> np.ndarray:
    # pytorch-fid passes disp=False; SciPy >= 1.16 deprecates that flag (same matrix) and 1.18 drops it.
    if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 16):
        return linalg.sqrtm(a, disp=False)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)


def reference_fid(act1: np.ndarray, act2: np.ndarray, eps: float = 1e-6) -> float:
    """pytorch-fid's calculate_activation_statistics + calculate_frechet_distance, in our own words."""
    m1, s1 = np.mean(act1, axis=0), np.cov(act1, rowvar=False)
    m2, s2 = np.mean(act2, axis=0), np.cov(act2, rowvar=False)
    delta = m1 - m2
    root = _sqrtm_quiet(s1.dot(s2))
    if not np.isfinite(root).all():
        shift = eps * np.eye(s1.shape[0])
        root = _sqrtm_quiet((s1 + shift).dot(s2 + shift))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError("imaginary component")
        root = root.real
    return float(delta.dot(delta) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pytorch_fid_algorithm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(0.3, 1.5, size=(300, 16)) + rng.gamma(2.0, size=(300, 16))
    expected = reference_fid(a, b)
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)
    # torch input, float32 in, float64 statistics.
    assert fid(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        reference_fid(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)), rel=1e-6
    )


def test_identical_sets_give_zero() -> None:
    a = np.random.default_rng(0).normal(size=(500, 32))
    assert abs(fid(a, a)) < 1e-6


def test_gaussians_match_closed_form() -> None:
    # Diagonal covariances commute, so d^2 = ||mu1 - mu2||^2 + sum (sqrt(v1) - sqrt(v2))^2.
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 1.0])
    exact = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(exact, rel=1e-10)

    rng = np.random.default_rng(0)
    n = 40_000
    a = mu1 + np.sqrt(v1) * rng.normal(size=(n, 3))
    b = mu2 + np.sqrt(v2) * rng.normal(size=(n, 3))
    assert fid(a, b) == pytest.approx(exact, rel=0.02)


def test_fid_from_stats_and_gaussian_stats() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(200, 8)), rng.normal(size=(250, 8)) * 2
    mu, sigma = gaussian_stats(b)
    assert mu.dtype == np.float64 and sigma.shape == (8, 8)
    np.testing.assert_allclose(sigma, np.cov(b, rowvar=False))
    assert fid_from_stats(a, mu, sigma) == pytest.approx(fid(a, b), rel=1e-12)


def test_singular_covariance_retries_or_stays_finite() -> None:
    # Fewer samples than dimensions: the covariances are singular, the result must still be finite.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 20)), rng.normal(size=(10, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = fid(a, b)
    assert np.isfinite(value)
    assert value == pytest.approx(reference_fid(a, b), rel=1e-6)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="feats_b"):
        fid(np.zeros((5, 3)), np.zeros((5, 3, 1)))
    with pytest.raises(ValueError, match="different feature dimensions"):
        fid(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        fid(np.full((5, 3), np.nan), np.zeros((5, 3)))
