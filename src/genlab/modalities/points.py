"""Points (vectors, e.g. the 2D toys): unbiased MMD to the test points, the NLL of the samples under the true density
where it is known, mode coverage of the Gaussian mixtures; scatter plots and float .npz sample files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genlab.config import RunConfig
from genlab.data.toy2d import GaussianMixture2D, known_density
from genlab.metrics.modes import N_SAMPLES, mixture_coverage_of
from genlab.metrics.toy import mmd, nll_under
from genlab.modalities.base import Modality
from genlab.models.sampling import timed_samples
from genlab.registry import register_modality
from genlab.spec import DataSpec


def save_scatter(points: torch.Tensor, path: str | os.PathLike, reference: torch.Tensor | None = None, title: str = "") -> Path:
    """Scatter plot of 2D samples (and, faintly, reference data) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if reference is not None:
        r = reference.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=1, c="lightgray", label="data")
    p = points.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=1, c="tab:blue", label="samples")
    ax.set_aspect("equal")
    ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


@register_modality("points")
class PointsModality(Modality):
    suffixes = (".png", ".npz")
    headline = (("modes_covered", "modes"), ("high_quality", "high-quality"), ("mmd", "MMD"), ("kl_gap", "KL gap"))

    def summary(self, result: dict[str, Any], fmt: Any = lambda key, v: f"{v:.4g}") -> list[str]:
        """As the base, with the modes covered out of the mixture's modes."""
        parts = super().summary(result, fmt)
        if isinstance(result.get("modes_covered"), int) and result.get("n_modes"):
            parts[0] = f"modes {result['modes_covered']}/{result['n_modes']}"
        return parts

    def preview_count(self, requested: int) -> int:
        return 2000  # a scatter needs many points

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        """A scatter of the first two coordinates over (the first 2,000 points of) `reference`, a dataset or a tensor."""
        ref = getattr(reference, "x", reference)
        ref = None if ref is None else ref[:2000, :2].float()
        return save_scatter(x[:, :2], path, ref)

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """MMD to the test points; the true density's entropy and the samples' NLL under it; mode coverage."""
        ec = cfg.eval
        x, _, sec = timed_samples(model, ec.n_samples, ec.seed, **(sample_kwargs or {}))
        m = min(2000, len(x), len(test.x))
        out: dict[str, Any] = {"mmd": float(mmd(test.x[:m].double(), x[:m].double())), "seconds_per_sample": sec}
        conv = {"n_samples": ec.n_samples, "mmd": f"unbiased MMD^2, Gaussian kernels, {m} vs {m} points"}
        dist = known_density(cfg.data.name)
        if dist is not None:
            out["true_nll"] = dist.entropy()
            out["samples_true_nll"] = float(nll_under(dist.log_prob, x.double()))
            conv["true_nll"] = "entropy of the true density (nats); nll - true_nll is the KL gap"
        if isinstance(dist, GaussianMixture2D) and len(x) >= N_SAMPLES:
            out.update(mixture_coverage_of(x[:N_SAMPLES], dist))
            conv["modes"] = f"first {N_SAMPLES} samples; high_quality: within 3 std of a mode; a mode is covered by >= 1 of them"
        return out, conv
