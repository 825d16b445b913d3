"""Fréchet distance between Gaussians fitted to features (FID; Heusel et al. 2017), computed the way
pytorch-fid does: float64 statistics, scipy's Schur `sqrtm`, an eps offset when the product is near-singular."""

from __future__ import annotations

import warnings

import numpy as np
import torch

Features = np.ndarray | torch.Tensor


def as_features(feats: Features, name: str = "features") -> torch.Tensor:
    """A numpy array or tensor of shape (N, D) -> a detached float64 tensor on the same device.

    Raises ValueError naming `name` if the array is not 2-D, is empty or holds NaN/inf.
    """
    t = feats.detach() if torch.is_tensor(feats) else torch.as_tensor(np.asarray(feats))
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (N, D) array of feature vectors, got shape {tuple(t.shape)}; flatten examples first")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf; check the model's samples and the feature network")
    return t


def as_feature_pair(a: Features, b: Features, names: tuple[str, str] = ("feats_a", "feats_b")) -> tuple[torch.Tensor, torch.Tensor]:
    """`as_features` on both sets, checking they have the same dimension; `b` moves to `a`'s device."""
    ta, tb = as_features(a, names[0]), as_features(b, names[1])
    if ta.shape[1] != tb.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} have different feature dimensions ({ta.shape[1]} vs {tb.shape[1]})")
    return ta, tb.to(ta.device)


def gaussian_stats(feats: Features) -> tuple[np.ndarray, np.ndarray]:
    """Mean mu (D,) and unbiased covariance Sigma (D, D) of (N, D) features, in float64 numpy.

    Sigma = 1/(N-1) sum_n (f_n - mu)(f_n - mu)^T, exactly `np.cov(feats, rowvar=False)` as in pytorch-fid.
    """
    x = as_features(feats).cpu().numpy()
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors to estimate a covariance, got {x.shape[0]}")
    return np.mean(x, axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy's principal matrix square root without its console chatter (pytorch-fid's `disp=False`).

    SciPy >= 1.16 deprecates `disp` (and 1.18 removes it); the algorithm and the matrix are the same.
    """
    import scipy
    from scipy import linalg

    if tuple(int(p) for p in scipy.__version__.split(".")[:2]) < (1, 16):
        return linalg.sqrtm(a, disp=False)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return linalg.sqrtm(a)


def frechet_distance(mu1: Features, sigma1: Features, mu2: Features, sigma2: Features, eps: float = 1e-6) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, Sigma1) and N(mu2, Sigma2):

        d^2 = ||mu1 - mu2||^2 + Tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^{1/2}).

    As pytorch-fid: if sqrtm(Sigma1 Sigma2) is not finite, retry with eps * I added to both covariances;
    a complex square root whose diagonal has an imaginary part above 1e-3 raises ValueError, a smaller
    one is dropped.

    >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
    2.0
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(torch.as_tensor(m).cpu(), dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(torch.as_tensor(s).cpu(), dtype=np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0],) * 2:
        raise ValueError(f"mismatched Gaussian statistics: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2

    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        # The product is (near-)singular, typically when N < D: regularise and retry.
        warnings.warn(f"FID: sqrtm(Sigma1 Sigma2) is not finite; adding {eps} to the covariance diagonals", RuntimeWarning, stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))

    # Round-off can leave a small imaginary part; a large one means the statistics are broken.
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: sqrtm(Sigma1 Sigma2) has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real

    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_stats(feats: Features, mu_ref: Features, sigma_ref: Features, eps: float = 1e-6) -> float:
    """FID of (N, D) features against precomputed reference statistics (e.g. cached for a dataset)."""
    mu, sigma = gaussian_stats(feats)
    return frechet_distance(mu, sigma, mu_ref, sigma_ref, eps=eps)


def fid(feats_a: Features, feats_b: Features, eps: float = 1e-6) -> float:
    """Fréchet Inception Distance between two sets of (N, D) features (numpy or torch).

    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(2000, 8)), rng.normal(1.0, 1.0, size=(2000, 8))
    >>> round(fid(a, b))  # ||mu_a - mu_b||^2 = 8, equal covariances
    8
    """
    a, b = as_feature_pair(feats_a, feats_b)
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b), eps=eps)
