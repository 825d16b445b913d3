"""Convolutional encoder (C x H x W image -> vector) and decoder (vector -> C' x H x W map) with pre-activation
residual blocks (He et al. 2016); every level halves the resolution, so 28 -> 14 -> 7 needs no padding to 32."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from genlab.errors import ConfigError
from genlab.nn.mlp import Activation, make_activation

Upsample = Literal["nearest", "transposed"]


def lowest_resolution(size: tuple[int, int], levels: int) -> tuple[int, int]:
    """(H / 2**levels, W / 2**levels), the feature map at the bottom of a `levels`-level net.

    Raises ValueError when H or W is not divisible by 2**levels (e.g. 28 with 3 levels: 28 -> 14 -> 7 -> 3.5).
    """
    h, w = size
    f = 2**levels
    if h % f or w % f:
        raise ValueError(
            f"{h}x{w} images cannot be halved {levels} times ({h}/{f}, {w}/{f} are not integers); "
            f"use fewer levels (at most {min(_halvings(h), _halvings(w))}) or pad the images"
        )
    return h // f, w // f


def check_levels(channels: Sequence[int], size: tuple[int, int], what: str = "a conv net") -> None:
    """ConfigError unless `channels` lists at least one level and every level halves `size` exactly."""
    if not channels:
        raise ConfigError(f"model.channels: {what} needs at least one level, e.g. [32, 64]")
    try:
        lowest_resolution(size, len(channels))
    except ValueError as e:
        raise ConfigError(f"model.channels={list(channels)}: {e}") from None


def _halvings(n: int) -> int:
    """How many times n halves exactly (28 -> 2, 32 -> 5)."""
    k = 0
    while n % 2 == 0 and n > 1:
        n, k = n // 2, k + 1
    return k


def _norm(channels: int, norm: bool) -> nn.Module:
    # Up to 8 groups of equal size: GroupNorm works at batch size 1 and needs no running statistics.
    return nn.GroupNorm(math.gcd(8, channels), channels) if norm else nn.Identity()


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))) at fixed resolution and width."""

    def __init__(self, channels: int, activation: Activation = "silu", norm: bool = True):
        super().__init__()
        self.branch = nn.Sequential(
            _norm(channels, norm),
            make_activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
            _norm(channels, norm),
            make_activation(activation),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class ConvEncoder(nn.Module):
    """Image (B, C, H, W) -> vector (B, out_dim).

    Level i is a stride-2 3x3 conv to `channels[i]` followed by `blocks` residual blocks, so the
    feature map goes H -> H/2 -> ... -> H/2**L; it is then flattened (with an optional conditioning
    vector appended) and mapped to `out_dim` by a linear layer.

    Example:
        >>> enc = ConvEncoder(1, (28, 28), channels=(32, 64), out_dim=64)  # 28 -> 14 -> 7
        >>> enc(torch.zeros(8, 1, 28, 28)).shape
        torch.Size([8, 64])
    """

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        channels: Sequence[int],
        out_dim: int,
        *,
        blocks: int = 1,
        activation: Activation = "silu",
        norm: bool = True,
        cond_dim: int = 0,
    ):
        super().__init__()
        if not channels:
            raise ValueError("a conv net needs at least one level: channels must be non-empty")
        h, w = lowest_resolution(size, len(channels))
        layers: list[nn.Module] = []
        prev = in_channels
        for i, c in enumerate(channels):
            if i > 0:
                layers += [_norm(prev, norm), make_activation(activation)]
            layers.append(nn.Conv2d(prev, c, 3, stride=2, padding=1))
            layers += [ResBlock(c, activation, norm) for _ in range(blocks)]
            prev = c
        layers += [_norm(prev, norm), make_activation(activation), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(prev * h * w + cond_dim, out_dim)
        self.cond_dim = cond_dim

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """`x` (B, C, H, W), `cond` (B, cond_dim) when built with cond_dim > 0 -> (B, out_dim)."""
        h = self.features(x)  # (B, C_L * H_L * W_L)
        if self.cond_dim:
            h = torch.cat([h, cond], dim=1)
        return self.out(h)


class ConvDecoder(nn.Module):
    """Vector (B, in_dim) -> feature map (B, out_channels, H, W), the mirror of ConvEncoder.

    A linear layer makes a (channels[-1], H/2**L, W/2**L) map; each level, from the lowest, applies
    `blocks` residual blocks at width `channels[i]` and doubles the resolution (nearest-neighbour
    upsampling + 3x3 conv, or a 4x4 stride-2 transposed conv) into `channels[i - 1]`, the last one
    straight into `out_channels`.

    Example:
        >>> dec = ConvDecoder(32, 1, (28, 28), channels=(32, 64))  # 7 -> 14 -> 28
        >>> dec(torch.zeros(8, 32)).shape
        torch.Size([8, 1, 28, 28])
    """

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        size: tuple[int, int],
        channels: Sequence[int],
        *,
        blocks: int = 1,
        activation: Activation = "silu",
        norm: bool = True,
        upsample: Upsample = "nearest",
    ):
        super().__init__()
        if not channels:
            raise ValueError("a conv net needs at least one level: channels must be non-empty")
        if upsample not in ("nearest", "transposed"):
            raise ValueError(f"upsample must be 'nearest' or 'transposed', got {upsample!r}")
        self.low = (channels[-1], *lowest_resolution(size, len(channels)))
        self.inp = nn.Linear(in_dim, math.prod(self.low))
        layers: list[nn.Module] = []
        for i in reversed(range(len(channels))):
            c, nxt = channels[i], channels[i - 1] if i > 0 else out_channels
            layers += [ResBlock(c, activation, norm) for _ in range(blocks)]
            layers += [_norm(c, norm), make_activation(activation)]
            if upsample == "nearest":
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, nxt, 3, padding=1)]
            else:
                layers.append(nn.ConvTranspose2d(c, nxt, 4, stride=2, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """`z` (B, in_dim) -> (B, out_channels, H, W)."""
        h = self.inp(z).view(-1, *self.low)  # (B, C_L, H_L, W_L)
        return self.body(h)
