"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): the same random colour, translation and cutout
applied to real and generated images before the critic, in both phases, so G's gradients pass through them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTS = ("color", "translation", "cutout")


def _uniform(x: torch.Tensor, *shape: int) -> torch.Tensor:
    return torch.rand((len(x), *shape), device=x.device, dtype=x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    """Brightness + U(-0.5, 0.5), saturation x U(0, 2) around the pixel's channel mean, contrast x U(0.5, 1.5) around the image mean."""
    x = x + (_uniform(x, 1, 1, 1) - 0.5)
    m = x.mean(1, keepdim=True)
    x = (x - m) * (2 * _uniform(x, 1, 1, 1)) + m
    m = x.mean((1, 2, 3), keepdim=True)
    return (x - m) * (_uniform(x, 1, 1, 1) + 0.5) + m


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio x its size in each direction (whole pixels), filling with zeros."""
    B, _, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (B, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (B, 1), device=x.device)
    # Index into the image padded by one zero pixel: every out-of-range source clamps onto the padding.
    iy = (torch.arange(H, device=x.device) + dy + 1).clamp(0, H + 1)  # (B, H)
    ix = (torch.arange(W, device=x.device) + dx + 1).clamp(0, W + 1)  # (B, W)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # (B, H+2, W+2, C)
    b = torch.arange(B, device=x.device)[:, None, None]
    return padded[b, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ratio x the image size at a random centre of each image."""
    B, _, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H, (B, 1, 1), device=x.device)
    cx = torch.randint(0, W, (B, 1, 1), device=x.device)
    ys = torch.arange(H, device=x.device)[None, :, None] - cy + ch // 2  # position inside the square, (B, H, 1)
    xs = torch.arange(W, device=x.device)[None, None, :] - cx + cw // 2
    inside = (ys >= 0) & (ys < ch) & (xs >= 0) & (xs < cw)  # (B, H, W)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_FNS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the named augmentations in order (a no-op for an empty policy)."""
    for name in policy:
        x = _FNS[name](x)
    return x
