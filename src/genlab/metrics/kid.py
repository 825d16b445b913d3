"""Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD^2 with a cubic polynomial kernel,
averaged over random subsets, following torch-fidelity's estimator and its subset sampling exactly."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from genlab.metrics.fid import Features, as_feature_pair


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, gamma: float | None = None, coef0: float = 1) -> torch.Tensor:
    """k(x, y) = (gamma x.y + coef0)^degree for all pairs of rows; gamma defaults to 1/D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (x @ y.T * gamma + coef0).pow_(degree)


def unbiased_mmd2(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> float:
    """Unbiased MMD^2 from the (m, m) kernel matrices of two equal-sized samples:

        sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1))  -  2 sum_{i, j} k(x_i, y_j) / m^2

    (torch-fidelity's "unbiased" estimator: the cross term keeps its diagonal).
    """
    m = k_xx.shape[0]
    within = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return float(within / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kid(
    feats_a: Features,
    feats_b: Features,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int = 0,
) -> tuple[float, float]:
    """KID between two sets of (N, D) features: (mean, std) of the unbiased MMD^2 over `subsets` subsets.

    Each subset draws `subset_size` rows from each set without replacement with
    `np.random.RandomState(seed).choice(n, subset_size, replace=False)` (first set, then second, per
    subset), as torch-fidelity does, so equal seeds give equal subsets. The kernel is
    k(x, y) = (x.y / D + 1)^3 by default. `subset_size` larger than either set is capped at the smaller
    set with a warning (torch-fidelity refuses). Computed in float64; std is the population std (ddof=0).
    """
    a, b = as_feature_pair(feats_a, feats_b)
    n_a, n_b = a.shape[0], b.shape[0]
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    if subset_size > min(n_a, n_b):
        warnings.warn(f"KID: subset_size={subset_size} exceeds the sample sizes ({n_a}, {n_b}); using {min(n_a, n_b)}", stacklevel=2)
        subset_size = min(n_a, n_b)
    if subset_size < 2:
        raise ValueError(f"KID needs at least 2 samples per subset, got subset_size={subset_size}")

    k = lambda u, v: polynomial_kernel(u, v, degree, gamma, coef0)
    rng = np.random.RandomState(seed)
    mmds = np.empty(subsets)
    for s in range(subsets):
        x = a[torch.from_numpy(rng.choice(n_a, subset_size, replace=False)).to(a.device)]
        y = b[torch.from_numpy(rng.choice(n_b, subset_size, replace=False)).to(b.device)]
        mmds[s] = unbiased_mmd2(k(x, x), k(x, y), k(y, y))
    return float(mmds.mean()), float(mmds.std())
