"""KID against torch-fidelity's subset estimator, restated here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.metrics import kid


def reference_kid(
    f1: np.ndarray, f2: np.ndarray, subsets: int, size: int, seed: int, degree: int = 3, coef0: float = 1
) -> tuple[float, float]:
    """torch-fidelity's kid_features_to_metric: same RandomState draws, polynomial kernel, unbiased MMD^2."""
    gamma = 1.0 / f1.shape[1]
    rng = np.random.RandomState(seed)
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), size, replace=False)]
        y = f2[rng.choice(len(f2), size, replace=False)]
        kxx, kyy, kxy = ((p @ q.T * gamma + coef0) ** degree for p, q in ((x, x), (y, y), (x, y)))
        off_diag = (kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))
        values.append(off_diag / (size * (size - 1)) - 2 * kxy.sum() / size**2)
    return float(np.mean(values)), float(np.std(values))


def test_matches_torch_fidelity_estimator() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 16))
    b = rng.normal(0.2, 1.1, size=(250, 16))
    mean, std = kid(a, b, subsets=10, subset_size=100, seed=7)
    ref_mean, ref_std = reference_kid(a, b, 10, 100, 7)
    assert mean == pytest.approx(ref_mean, rel=1e-6)
    assert std == pytest.approx(ref_std, rel=1e-6)
    # Torch input gives the same subsets and values.
    t_mean, _ = kid(torch.from_numpy(a), torch.from_numpy(b), subsets=10, subset_size=100, seed=7)
    assert t_mean == pytest.approx(ref_mean, rel=1e-12)


def test_subset_size_capped_with_warning() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(80, 8)), rng.normal(size=(60, 8))
    with pytest.warns(UserWarning, match="subset_size"):
        mean, std = kid(a, b, subsets=5, subset_size=1000, seed=0)
    assert (mean, std) == pytest.approx(reference_kid(a, b, 5, 60, 0), rel=1e-6)


def test_near_zero_for_same_distribution_and_positive_for_different() -> None:
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(1.0, 1.0, size=(400, 8))
    same, same_std = kid(a, b, subsets=10, subset_size=150)
    diff, _ = kid(a, c, subsets=10, subset_size=150)
    assert abs(same) < 3 * same_std + 1e-3
    assert diff > 10 * max(abs(same), 1e-3)


def test_seed_is_respected() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(120, 4)), rng.normal(size=(120, 4))
    assert kid(a, b, subsets=3, subset_size=50, seed=1) == kid(a, b, subsets=3, subset_size=50, seed=1)
    assert kid(a, b, subsets=3, subset_size=50, seed=1) != kid(a, b, subsets=3, subset_size=50, seed=2)
