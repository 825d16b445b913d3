"""Density heat-maps of 2D models next to the true density (matplotlib, headless)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

LogProb = Callable[[torch.Tensor], torch.Tensor]


def density_on_grid(log_prob: LogProb, lim: float = 4.5, n: int = 200) -> torch.Tensor:
    """p(x) on the centres of an n x n grid over [-lim, lim]^2, rows from y = +lim down (image orientation)."""
    from genlab.models.flow.density import log_density_grid

    logp, _ = log_density_grid(lambda x: log_prob(x.double()), lim, n)
    return logp.double().exp()


def save_density_grid(
    rows: Sequence[tuple[str, Sequence[tuple[str, torch.Tensor]]]], path: str | os.PathLike, lim: float = 4.5, cell: float = 1.6
) -> Path:
    """One row per dataset: [(row label, [(column title, density (n, n)), ...]), ...] -> a PNG of heat-maps.

    Each panel has its own colour scale (max density -> yellow), so shapes are compared, not peak heights.

    Example:
        >>> from genlab.data.toy2d import toy_distribution
        >>> true = density_on_grid(toy_distribution("moons").log_prob)
        >>> save_density_grid([("moons", [("true", true), ("nsf", density_on_grid(flow.log_prob))])], "moons.png")
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(cols) for _, cols in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols, cell * n_rows), squeeze=False)
    for r, (label, cols) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cols):
                ax.axis("off")
                continue
            title, dens = cols[c]
            ax.imshow(dens.float().numpy(), extent=(-lim, lim, -lim, lim), cmap="viridis", interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.tight_layout(pad=0.6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path
