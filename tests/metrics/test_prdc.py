"""Precision/recall and density/coverage against a brute-force restatement of the papers' definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genlab.metrics import density_coverage, prdc, precision_recall


def brute_force(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """The four metrics from full distance matrices (Kynkäänniemi et al. with <=, Naeem et al. with <)."""

    def dist(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.sqrt(((p[:, None, :] - q[None, :, :]) ** 2).sum(-1))

    d_rr, d_ff, d_rf = dist(real, real), dist(fake, fake), dist(real, fake)
    # k-th nearest other point: index k of each sorted row (index 0 is the point itself).
    r_pr, f_pr, r_dc = np.sort(d_rr, 1)[:, k_pr], np.sort(d_ff, 1)[:, k_pr], np.sort(d_rr, 1)[:, k_dc]
    return {
        "precision": float((d_rf <= r_pr[:, None]).any(0).mean()),
        "recall": float((d_rf.T <= f_pr[:, None]).any(0).mean()),
        "density": float((d_rf < r_dc[:, None]).sum() / (k_dc * len(fake))),
        "coverage": float((d_rf < r_dc[:, None]).any(1).mean()),
    }


def _clouds(seed: int = 0, shift: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(150, 5)), rng.normal(shift, 1.2, size=(120, 5))


def test_matches_brute_force() -> None:
    real, fake = _clouds()
    out = prdc(real, fake, pr_k=3, dc_k=5)
    assert out == pytest.approx(brute_force(real, fake, 3, 5), abs=1e-12)
    assert precision_recall(real, fake, k=4) == pytest.approx(tuple(brute_force(real, fake, 4, 4)[m] for m in ("precision", "recall")))
    assert density_coverage(real, fake, k=2) == pytest.approx(tuple(brute_force(real, fake, 2, 2)[m] for m in ("density", "coverage")))


def test_independent_of_batch_size() -> None:
    real, fake = _clouds(1)
    results = [prdc(torch.from_numpy(real), torch.from_numpy(fake), batch_size=b) for b in (1, 7, 64, None)]
    assert all(r == results[0] for r in results)


def test_identical_sets() -> None:
    real = np.random.default_rng(2).normal(size=(200, 8))
    out = prdc(real, real.copy())
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    assert out["density"] == 1.0  # ties at the k-th neighbour are decided exactly


def test_shift_lowers_precision_and_recall() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 4))
    scores = [precision_recall(real, rng.normal(size=(300, 4)) + shift) for shift in (0.0, 1.0, 3.0)]
    precisions, recalls = zip(*scores, strict=True)
    assert precisions[0] > precisions[1] > precisions[2]
    assert recalls[0] > recalls[1] > recalls[2]
    assert precisions[2] < 0.2


def test_k_too_large_is_an_error() -> None:
    real, fake = _clouds()
    with pytest.raises(ValueError, match="nearest neighbours"):
        precision_recall(real[:3], fake, k=3)


def test_ties_on_discrete_data_and_duplicates() -> None:
    # Binary vectors: many exactly tied distances. Duplicated fake points: a collapsed mode.
    rng = np.random.default_rng(4)
    real = rng.integers(0, 2, size=(120, 10)).astype(np.float64)
    fake = np.concatenate([rng.integers(0, 2, size=(60, 10)), np.repeat(real[:3], 30, axis=0)]).astype(np.float64)
    expected = brute_force(real, fake, 3, 5)
    for batch_size in (5, None):
        assert prdc(real, fake, batch_size=batch_size) == pytest.approx(expected, abs=1e-12)
