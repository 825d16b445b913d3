"""Metrics for low-dimensional toy data with a known target: unbiased Gaussian-kernel MMD^2 (Gretton et al. 2012),
NLL of samples under the true density, and mode coverage of mixtures (VEEGAN, Srivastava et al. 2017; PacGAN)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from genlab.metrics.fid import Features, as_feature_pair

DEFAULT_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
# Default block: about 2^22 float64 distances (32 MiB) at a time.
_BLOCK_ELEMENTS = 1 << 22


def _distance_blocks(x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> Iterator[torch.Tensor]:
    """||x_i - y_j|| for consecutive row blocks of x, computed directly (exactly 0 on identical rows)."""
    rows = batch_size or max(1, _BLOCK_ELEMENTS // y.shape[0])
    for start in range(0, x.shape[0], rows):
        yield torch.cdist(x[start : start + rows], y, compute_mode="donot_use_mm_for_euclid_dist")


def mmd(x: Features, y: Features, bandwidths: float | Sequence[float] = DEFAULT_BANDWIDTHS, *, batch_size: int | None = None) -> float:
    """Unbiased estimate of MMD^2 between samples x (N, D) and y (M, D), in float64.

    With the kernel k(a, b) = (1/S) sum_s exp(-||a - b||^2 / (2 sigma_s^2)) averaged over the S bandwidths,

        MMD^2 = sum_{i != i'} k(x_i, x_i') / (N (N-1)) + sum_{j != j'} k(y_j, y_j') / (M (M-1)) - 2 sum_{i,j} k(x_i, y_j) / (N M).

    Zero in expectation when x and y come from the same distribution (so it can be slightly negative),
    positive otherwise. Distances are computed in row blocks (`batch_size`), so large sets fit in memory.
    """
    a, b = as_feature_pair(x, y, ("x", "y"))
    n, m = a.shape[0], b.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples in each set, got {n} and {m}")
    sigmas = torch.as_tensor([bandwidths] if isinstance(bandwidths, int | float) else list(bandwidths), dtype=torch.float64)
    if sigmas.numel() == 0 or not (sigmas > 0).all():
        raise ValueError(f"bandwidths must be positive, got {bandwidths}")
    inv_two_var = (0.5 / sigmas**2).to(a.device)

    def kernel_sum(u: torch.Tensor, v: torch.Tensor) -> float:
        total = 0.0
        for d in _distance_blocks(u, v, batch_size):
            total += torch.exp(-(d**2)[..., None] * inv_two_var).mean(-1).sum().item()
        return total

    # k(a, a) = 1 exactly (the distance to itself is exactly 0), so the diagonals sum to N and M.
    k_xx = (kernel_sum(a, a) - n) / (n * (n - 1))
    k_yy = (kernel_sum(b, b) - m) / (m * (m - 1))
    return k_xx + k_yy - 2 * kernel_sum(a, b) / (n * m)


@torch.no_grad()
def nll_under(log_prob_fn: Callable[[torch.Tensor], torch.Tensor], samples: Features, *, batch_size: int = 65536) -> float:
    """Mean NLL in nats of model samples under the known true density: -(1/M) sum_j log p_data(y_j).

    A Monte Carlo estimate of the cross-entropy H(p_model, p_data); it punishes samples off the data's
    support (low precision) but not missing modes, so report it beside a coverage metric. `log_prob_fn`
    maps a (B, D) batch, in the samples' own dtype, to (B,) log densities; the sum is taken in float64.
    """
    y = samples.detach() if torch.is_tensor(samples) else torch.as_tensor(samples)
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"samples must be a non-empty (M, D) array, got shape {tuple(y.shape)}")
    total = 0.0
    for start in range(0, y.shape[0], batch_size):
        total -= log_prob_fn(y[start : start + batch_size]).double().sum().item()
    return total / y.shape[0]


def mode_coverage(
    samples: Features, centres: Features, std: float | Sequence[float], n_std: float = 3.0, *, min_samples: int = 1
) -> tuple[int, float]:
    """(modes covered, fraction of high-quality samples) for a mixture with known centres (K, D).

    A sample is high-quality if it lies within `n_std` standard deviations (Euclidean distance) of its
    nearest centre; a mode is covered if it holds at least `min_samples` high-quality samples (1 in
    VEEGAN; PacGAN counts a mode lost below 20). `std` is one value or one per mode.

    >>> centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    >>> mode_coverage(torch.tensor([[0.1, 0.0], [0.0, 5.0]]), centres, std=0.1)
    (1, 0.5)
    """
    y, c = as_feature_pair(samples, centres, ("samples", "centres"))
    k = c.shape[0]
    std_t = torch.as_tensor(std, dtype=torch.float64, device=c.device).expand(k)
    dist, nearest = torch.cdist(y, c, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    good = dist <= n_std * std_t[nearest]
    counts = torch.bincount(nearest[good], minlength=k)
    return int((counts >= min_samples).sum()), good.double().mean().item()
