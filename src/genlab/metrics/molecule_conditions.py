"""How close property-conditional molecule generation lands to the requested values: per property, the mean absolute
error |v(m) - v*| over the valid samples and the share of them within a tolerance of the target (as reported for
conditional SMILES generators, e.g. MolGPT, Bagal et al. 2021), with the same MAE for randomly re-paired targets as
the no-conditioning baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from genlab.data.molecule_properties import PROPERTY_NAMES, PROPERTY_TOLERANCE, smiles_properties
from genlab.errors import DataError


def condition_metrics(
    targets: np.ndarray,
    achieved: np.ndarray,
    names: Sequence[str],
    tolerance: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, float | None]:
    """`targets` (n, K) requested values and `achieved` (n, K) values of the generated molecules (rows of NaN for
    invalid ones), columns in `names` order. Returns, per property p:
      cond_mae_<p> = mean_i |a_ip - t_ip| over the valid samples,
      cond_within_<p> = share of the valid samples with |a_ip - t_ip| <= tol_p,
      cond_mae_<p>_shuffled = the MAE against the targets of other samples (a random permutation): what an
        unconditional model scores, so conditioning helps when cond_mae_<p> is well below it;
    and cond_valid, the share of samples that are valid. Values need >= 1 valid sample (None otherwise)."""
    targets, achieved = np.asarray(targets, dtype=np.float64), np.asarray(achieved, dtype=np.float64)
    if targets.ndim != 2 or targets.shape != achieved.shape or targets.shape[1] != len(names):
        raise DataError(f"condition metrics: targets {targets.shape} and achieved {achieved.shape} must both be (n, {len(names)})")
    if len(targets) == 0:
        raise DataError("condition metrics of an empty sample: draw at least one molecule")
    tol = {**PROPERTY_TOLERANCE, **(tolerance or {})}
    valid = np.isfinite(achieved).all(1)
    out: dict[str, float | None] = {"cond_valid": float(valid.mean())}
    perm = np.random.default_rng(seed).permutation(int(valid.sum()))
    for j, p in enumerate(names):
        t, a = targets[valid, j], achieved[valid, j]
        err = np.abs(a - t)
        out[f"cond_mae_{p}"] = float(err.mean()) if len(err) else None
        out[f"cond_within_{p}"] = float((err <= tol[p]).mean()) if len(err) else None
        out[f"cond_mae_{p}_shuffled"] = float(np.abs(a - t[perm]).mean()) if len(err) > 1 else None
    return out


def smiles_condition_metrics(
    smiles: Sequence[str], targets: np.ndarray, names: Sequence[str], tolerance: Mapping[str, float] | None = None, n_jobs: int = 1
) -> dict[str, float | None]:
    """`condition_metrics` of generated SMILES against the targets (n, K) they were asked for; the properties are
    computed with RDKit (genlab.data.molecule_properties)."""
    if len(smiles) != len(targets):
        raise DataError(f"condition metrics: {len(smiles)} molecules but {len(targets)} target rows")
    props = smiles_properties(smiles, n_jobs=n_jobs)
    cols = [PROPERTY_NAMES.index(p) for p in names]
    return condition_metrics(targets, props[:, cols], names, tolerance)
