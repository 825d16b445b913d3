"""Denoiser networks F(x, c_noise, class, cond): a UNet for images (Ronneberger et al. 2015 as used by DDPM, Ho et al. 2020,
with the scale-shift conditioning of Nichol & Dhariwal 2021) and a residual MLP for vectors (2D / tabular data)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.embeddings import ClassEmbedding, NoiseEmbedding


def _groups(channels: int, max_groups: int = 8) -> int:
    """The largest group count <= max_groups that divides `channels` (GroupNorm needs one)."""
    return next(g for g in range(min(max_groups, channels), 0, -1) if channels % g == 0)


class ResBlock(nn.Module):
    """GN-SiLU-conv3x3, then GN scaled and shifted by the embedding (AdaGN), SiLU, dropout, conv3x3; plus the input."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions through `scaled_dot_product_attention`, residual."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).view(B, 3, self.heads, C // self.heads, H * W).transpose(-1, -2).unbind(1)  # (B, h, HW, c)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, h, HW, c)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """F(x, c_noise[, y][, cond]) for images (B, C, H, W) -> (B, out_channels, H, W).

    Each level holds `blocks` residual blocks and halves the resolution with a stride-2 conv (28 -> 14 -> 7, no padding
    to 32 needed); the way up mirrors it, each block taking one skip connection. Self-attention sits after the blocks of
    every level whose resolution (the smaller side) is in `attn_resolutions`, and in the middle block when the lowest
    resolution is. `cond_channels` extra input channels (e.g. an upsampled low-resolution image) are concatenated to x.

    Example:
        >>> net = UNet(1, 1, channels=(32, 64, 64), blocks=1, attn_resolutions=(7,), size=(28, 28))
        >>> net(torch.zeros(4, 1, 28, 28), torch.zeros(4)).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        channels: Sequence[int] = (32, 64, 64),
        blocks: int = 1,
        attn_resolutions: Sequence[int] = (7,),
        heads: int = 4,
        size: tuple[int, int] = (28, 28),
        emb_dim: int | None = None,
        num_classes: int = 0,
        cond_channels: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        if not channels or blocks < 1:
            raise ValueError("UNet needs at least one level and one block per level")
        emb_dim = emb_dim or 4 * channels[0]
        self.noise_emb = NoiseEmbedding(channels[0], emb_dim)
        self.class_emb = ClassEmbedding(num_classes, emb_dim) if num_classes else None
        self.cond_channels = cond_channels
        self.conv_in = nn.Conv2d(in_channels + cond_channels, channels[0], 3, padding=1)
        res = min(size)
        self.down, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        skips, c = [], channels[0]
        for i, ch in enumerate(channels):
            attn = res in attn_resolutions
            for _ in range(blocks):
                self.down.append(ResBlock(c, ch, emb_dim, dropout))
                self.down_attn.append(Attention(ch, heads) if attn else nn.Identity())
                c = ch
                skips.append(c)
            last = i == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            res = res if last else (res + 1) // 2
        self.mid1 = ResBlock(c, c, emb_dim, dropout)
        self.mid_attn = Attention(c, heads) if res in attn_resolutions else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, dropout)
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, ch in reversed(list(enumerate(channels))):
            attn = res in attn_resolutions
            for _ in range(blocks):
                self.up.append(ResBlock(c + skips.pop(), ch, emb_dim, dropout))
                self.up_attn.append(Attention(ch, heads) if attn else nn.Identity())
                c = ch
            # Up: a 3x3 conv at the low resolution to the next level's width, then nearest-neighbour x2 (4x cheaper than
            # convolving after upsampling).
            if i > 0:
                self.upsample.append(nn.Conv2d(c, channels[i - 1], 3, padding=1))
                c = channels[i - 1]
            else:
                self.upsample.append(nn.Identity())
            res = res * 2
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)
        self.blocks, self.levels = blocks, len(channels)

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.noise_emb(c_noise)  # (B, E)
        if self.class_emb is not None:
            emb = emb + self.class_emb(y if y is not None else torch.full_like(c_noise, self.class_emb.null, dtype=torch.long))
        if self.cond_channels:
            x = torch.cat([x, cond], dim=1)
        h = self.conv_in(x)
        skips, k = [], 0
        for level in range(self.levels):
            for _ in range(self.blocks):
                h = self.down_attn[k](self.down[k](h, emb))
                skips.append(h)
                k += 1
            h = self.downsample[level](h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        k = 0
        for level in range(self.levels):
            for _ in range(self.blocks):
                h = self.up_attn[k](self.up[k](torch.cat([h, skips.pop()], dim=1), emb))
                k += 1
            if level < self.levels - 1:
                h = F.interpolate(self.upsample[level](h), size=skips[-1].shape[-2:], mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h)))


class MLPDenoiser(nn.Module):
    """F(x, c_noise[, y]) for vectors (B, D) -> (B, D): a residual MLP whose every block adds the noise (and class) embedding.

    Example:
        >>> net = MLPDenoiser(2, width=128, depth=3)
        >>> net(torch.zeros(5, 2), torch.zeros(5)).shape
        torch.Size([5, 2])
    """

    def __init__(self, dim: int, *, width: int = 128, depth: int = 3, emb_dim: int | None = None, num_classes: int = 0, cond_dim: int = 0):
        super().__init__()
        emb_dim = emb_dim or width
        self.noise_emb = NoiseEmbedding(min(64, width), emb_dim)
        self.class_emb = ClassEmbedding(num_classes, emb_dim) if num_classes else None
        self.cond_dim = cond_dim
        self.inp = nn.Linear(dim + cond_dim, width)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm": nn.LayerNorm(width),
                    "fc1": nn.Linear(width, width),
                    "emb": nn.Linear(emb_dim, width),
                    "fc2": nn.Linear(width, width),
                }
            )
            for _ in range(depth)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.noise_emb(c_noise)
        if self.class_emb is not None:
            emb = emb + self.class_emb(y if y is not None else torch.full_like(c_noise, self.class_emb.null, dtype=torch.long))
        h = self.inp(x if not self.cond_dim else torch.cat([x, cond], dim=1))
        emb = F.silu(emb)
        for b in self.blocks:
            h = h + b["fc2"](F.silu(b["fc1"](b["norm"](h)) + b["emb"](emb)))
        return self.out(h)
