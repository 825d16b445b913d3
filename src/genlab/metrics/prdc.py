"""k-NN precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020),
from float64 pairwise distances in row blocks: fast BLAS distances, with every comparison the rounding could
flip decided by an exact recomputation, so results are exact and do not depend on the block size."""

from __future__ import annotations

import torch

from genlab.metrics.fid import Features, as_feature_pair

# Default block: about 2^22 float64 distances (32 MiB) per temporary.
_BLOCK_ELEMENTS = 1 << 22
# Extra nearest-neighbour candidates re-checked exactly beyond the k + 1 needed.
_MARGIN = 8


def _rows_per_block(n_cols: int, batch_size: int | None) -> int:
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size or max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _exact_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||^2 over the last dim, rows paired (broadcasting): the reference value of every comparison."""
    return (a - b).pow(2).sum(-1)


def _exact_sq_pairs(x: torch.Tensor, y: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """||x[i_p] - y[j_p]||^2 for index pairs p, gathered in bounded chunks."""
    step = max(1, _BLOCK_ELEMENTS // x.shape[1])
    return torch.cat([_exact_sq(x[i[s : s + step]], y[j[s : s + step]]) for s in range(0, i.numel(), step)])


def _gram_sq(xb: torch.Tensor, y: torch.Tensor, y_sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances by ||x||^2 + ||y||^2 - 2 x.y (one matmul) and, per row, a bound on their distance to `_exact_sq`.

    Both differ from the true value by at most about D eps (||x||^2 + ||y||^2) (Higham's dot-product bound);
    the bound used is 8 (D + 2) eps (||x_i||^2 + max_j ||y_j||^2), shape (b, 1).
    """
    x_sq = (xb * xb).sum(1, keepdim=True)
    d2 = torch.addmm(y_sq[None, :], xb, y.T, alpha=-2.0).add_(x_sq)
    return d2, (x_sq + y_sq.max()).mul_(8 * (xb.shape[1] + 2) * torch.finfo(xb.dtype).eps)


def _within(d2: torch.Tensor, err: torch.Tensor, r2: torch.Tensor, xb: torch.Tensor, y: torch.Tensor, strict: bool) -> torch.Tensor:
    """exact ||xb_i - y_j||^2 < r2 (strict) or <= r2, from Gram distances d2 +- err; only near-ties are recomputed."""
    r2 = r2.expand_as(d2)
    out = d2 < r2 if strict else d2 <= r2
    i, j = ((d2 - r2).abs_() <= err).nonzero(as_tuple=True)
    if i.numel():
        exact, t = _exact_sq_pairs(xb, y, i, j), r2[i, j]
        out[i, j] = exact < t if strict else exact <= t
    return out


def knn_sq_distances(x: torch.Tensor, k: int, batch_size: int | None = None, name: str = "samples") -> torch.Tensor:
    """(N, k) exact squared distances from each row of x to its 1st..k-th nearest other rows (column k-1: NND_k^2).

    Candidates come from the Gram distances; a row whose candidates might miss a true neighbour
    (many near-ties, e.g. duplicated points) is recomputed exactly in full.
    """
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k={k} nearest neighbours need 1 <= k < number of {name} ({n})")
    x_sq = (x * x).sum(1)
    c = min(n, k + 1 + _MARGIN)
    out = torch.empty(n, k, dtype=x.dtype, device=x.device)
    rows = _rows_per_block(n, batch_size)
    for start in range(0, n, rows):
        xb = x[start : start + rows]
        d2, err = _gram_sq(xb, x, x_sq)
        approx, idx = d2.topk(c, dim=1, largest=False)
        exact = torch.stack([_exact_sq(xb, x[idx[:, t]]) for t in range(c)], 1).sort(dim=1).values
        if c < n:
            # Points outside the candidates are at least approx[:, -1] - max err away; if the (k+1)-th
            # candidate is not beyond that, the candidates hold the k + 1 nearest (the first: the point itself).
            unsure = (exact[:, k] > approx[:, -1] - err[:, 0]).nonzero().flatten()
            step = max(1, _BLOCK_ELEMENTS // (n * x.shape[1]))
            for r in unsure.split(step):
                exact[r] = _exact_sq(xb[r, None, :], x[None]).topk(c, dim=1, largest=False).values
        out[start : start + xb.shape[0]] = exact[:, 1 : k + 1]
    return out


def _prdc(real: Features, fake: Features, pr_k: int | None, dc_k: int | None, batch_size: int | None) -> dict[str, float]:
    """The metrics of `prdc`, skipping precision/recall when `pr_k` is None and density/coverage when `dc_k` is."""
    x, y = as_feature_pair(real, fake, ("real", "fake"))
    n, m = x.shape[0], y.shape[0]
    real_knn = knn_sq_distances(x, max(k for k in (pr_k, dc_k) if k is not None), batch_size, "real samples")
    if pr_k is not None:
        r2_real_pr, r2_fake_pr = real_knn[:, pr_k - 1], knn_sq_distances(y, pr_k, batch_size, "fake samples")[:, -1]
        precise = torch.zeros(m, dtype=torch.bool, device=x.device)
        recalled = torch.zeros(n, dtype=torch.bool, device=x.device)
    if dc_k is not None:
        r2_real_dc = real_knn[:, dc_k - 1]
        covered = torch.zeros(n, dtype=torch.bool, device=x.device)
        density = 0

    x_sq = (x * x).sum(1)
    rows = _rows_per_block(n, batch_size)
    for start in range(0, m, rows):  # fake rows against all real columns
        yb = y[start : start + rows]
        d2, err = _gram_sq(yb, x, x_sq)
        if pr_k is not None:
            precise[start : start + yb.shape[0]] = _within(d2, err, r2_real_pr[None, :], yb, x, strict=False).any(dim=1)
            recalled |= _within(d2, err, r2_fake_pr[start : start + yb.shape[0], None], yb, x, strict=False).any(dim=0)
        if dc_k is not None:
            inside = _within(d2, err, r2_real_dc[None, :], yb, x, strict=True)
            density += int(inside.sum())
            covered |= inside.any(dim=0)

    out = {}
    if pr_k is not None:
        out.update(precision=precise.double().mean().item(), recall=recalled.double().mean().item())
    if dc_k is not None:
        out.update(density=density / (dc_k * m), coverage=covered.double().mean().item())
    return out


def prdc(real: Features, fake: Features, *, pr_k: int = 3, dc_k: int = 5, batch_size: int | None = None) -> dict[str, float]:
    """Precision, recall (k = `pr_k`), density and coverage (k = `dc_k`) of `fake` (M, D) against `real` (N, D).

    With real X_1..X_N, fake Y_1..Y_M and the k-NN radii NND_k (distance to the k-th nearest other
    point of the same set):
      precision = (1/M) sum_j 1[exists i: ||Y_j - X_i|| <= NND_k(X_i)]    (Kynkäänniemi et al., <=)
      recall    = (1/N) sum_i 1[exists j: ||X_i - Y_j|| <= NND_k(Y_j)]    (radii of the fake set)
      density   = 1/(k M) sum_j sum_i 1[||Y_j - X_i|| < NND_k(X_i)]       (Naeem et al., strict <)
      coverage  = (1/N) sum_i 1[exists j: ||Y_j - X_i|| < NND_k(X_i)]
    The comparisons follow each paper's reference code; they differ only on exact ties, e.g. when
    `fake` is `real`: then all four are 1 (given no duplicate points). Ties are decided on exactly
    computed distances, so they are consistent. `batch_size` rows at a time (None: about 2^22
    distances per block); one pass over the real-fake distances serves all four.
    """
    return _prdc(real, fake, pr_k, dc_k, batch_size)


def precision_recall(real: Features, fake: Features, k: int = 3, *, batch_size: int | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of `fake` against `real`, (M, D) and (N, D).

    A fake sample is precise if it lies in the k-NN ball of some real sample; a real sample is recalled
    if it lies in the k-NN ball of some fake sample. See `prdc` for the formulas.
    """
    out = _prdc(real, fake, k, None, batch_size)
    return out["precision"], out["recall"]


def density_coverage(real: Features, fake: Features, k: int = 5, *, batch_size: int | None = None) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of `fake` against `real`; see `prdc` for the formulas.

    Density counts how many real k-NN balls hold each fake sample (1 in expectation when the two
    distributions agree, unbounded above); coverage is the fraction of real balls holding a fake sample.
    """
    out = _prdc(real, fake, None, k, batch_size)
    return out["density"], out["coverage"]
