"""Sample pictures: image grids (PIL) and 2D scatter plots (matplotlib)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch


def image_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> one H' x W' x C uint8 array, `nrow` images per row."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, scale: int = 1) -> Path:
    """Write a PNG grid of images in [-1, 1]; `scale` enlarges small images (nearest neighbour)."""
    from PIL import Image

    arr = image_grid(x, nrow)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


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


def save_samples(
    x: torch.Tensor, path: str | os.PathLike, reference: torch.Tensor | None = None, nrow: int | None = None, vocab: tuple[str, ...] = ()
) -> Path:
    """Images -> grid, vectors -> scatter of the first two dimensions, token ids -> a .txt file of one
    sequence per line (decoded with `vocab`, whose token 0 ends a sequence)."""
    if not x.is_floating_point():
        lines = [" ".join(map(str, row)) for row in x.tolist()]
        if vocab:
            lines = ["".join(vocab[i] for i in row[: row.index(0) if 0 in row else len(row)]) for row in x.tolist()]
        path = Path(path).with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(ln + "\n" for ln in lines))
        return path
    if x.dim() == 4:
        return save_image_grid(x, path, nrow=nrow, scale=2 if x.shape[-1] <= 32 else 1)
    return save_scatter(x[:, :2], path, None if reference is None else reference[:, :2])
