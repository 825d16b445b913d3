"""Batch transforms from stored values to model inputs: [-1, 1] scaling, uniform dequantisation,
dynamic binarisation and padding. They act on whole batches; randomness comes from the caller."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 in {0..255} -> float in [-1, 1] (0 -> -1, 255 -> 1)."""
    return x.float() / 127.5 - 1.0


def dequantize(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """uint8 + U[0, 1) noise -> (x + u) / 128 - 1 in [-1, 1): the continuous density's input."""
    # In float32, x + u for u within 2^-16 of 1 rounds up to x + 1 (1.0 for x = 255): cap u below that.
    return (x.float() + u.clamp(max=1 - 2**-16)) / 128.0 - 1.0


def binarize(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation: pixel ~ Bernoulli(x / 255), values {-1, 1}."""
    return torch.where(u < x.float() / 255.0, 1.0, -1.0)


def from_unit_range(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 {0..255} (round to the nearest level, clamp)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def pad_to(x: torch.Tensor, size: int, value: float = -1.0) -> torch.Tensor:
    """Pad an NCHW batch symmetrically to size x size (28 -> 32 adds 2 pixels each side)."""
    h, w = x.shape[-2:]
    if size < h or size < w:
        raise ValueError(f"cannot pad {h}x{w} images to {size}: the target is smaller")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=value)


def crop_from(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Undo `pad_to`: the centre h x w of an NCHW batch."""
    H, W = x.shape[-2:]
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top : top + h, left : left + w]
