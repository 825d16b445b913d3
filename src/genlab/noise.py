"""Seeded noise that is the same on every device: drawn on the generator's device (CPU by default), then moved."""

from __future__ import annotations

import torch


def randn(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """N(0, 1) noise of `shape` with `like`'s dtype and device, drawn on the generator's device (CPU by default)
    so a seeded generator gives the same numbers on every device."""
    dev = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def rand(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """U[0, 1) noise, drawn like `randn`."""
    dev = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)
