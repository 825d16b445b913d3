"""Densities of 2D models on a grid, for heat-maps: log p on an n x n grid and a coloured image of p."""

from __future__ import annotations

from collections.abc import Callable

import torch

Tensor = torch.Tensor

# A few anchor colours of a perceptually ordered map (dark blue -> teal -> yellow), interpolated linearly.
_ANCHORS = torch.tensor([[0.27, 0.00, 0.33], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.37, 0.79, 0.38], [0.99, 0.91, 0.14]])


@torch.no_grad()
def log_density_grid(log_prob: Callable[[Tensor], Tensor], lim: float = 4.5, n: int = 200, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """log p at the centres of an n x n grid over [-lim, lim]^2: returns (log p (n, n) with rows from y = +lim down,
    the cell area); `log_prob` maps points (m, 2) to (m,)."""
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 * lim - lim
    yy, xx = torch.meshgrid(c.flip(0), c, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], dim=1)
    out = torch.cat([log_prob(p).double().cpu() for p in pts.split(chunk)])
    return out.view(n, n), torch.tensor((2 * lim / n) ** 2)


def colorize(values: Tensor) -> Tensor:
    """(n, n) values -> (3, n, n) image in [-1, 1] through the anchor colour map (min -> dark, max -> yellow)."""
    v = values.float()
    v = (v - v.min()) / (v.max() - v.min()).clamp(min=1e-12)
    pos = v * (len(_ANCHORS) - 1)
    i = pos.floor().long().clamp(max=len(_ANCHORS) - 2)
    f = (pos - i)[..., None]
    rgb = _ANCHORS[i] * (1 - f) + _ANCHORS[i + 1] * f  # (n, n, 3)
    return rgb.permute(2, 0, 1) * 2 - 1


def density_image(log_prob: Callable[[Tensor], Tensor], lim: float = 4.5, n: int = 200) -> Tensor:
    """The density p (not log p) of a 2D model as a coloured (3, n, n) image in [-1, 1]."""
    logp, _ = log_density_grid(log_prob, lim, n)
    return colorize(logp.exp())
