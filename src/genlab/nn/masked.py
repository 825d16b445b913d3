"""Masked convolutions for autoregressive image models: PixelCNN's masks A and B over raster order with colour
groups (van den Oord et al. 2016a) and the Gated PixelCNN's vertical and horizontal stacks, which have no blind
spot (van den Oord et al. 2016b, "Conditional Image Generation with PixelCNN Decoders")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MaskType = Literal["A", "B"]


class CausalityError(ValueError):
    """A network meant to be autoregressive lets an output see an input at or after its own position."""


def channel_mask(out_channels: int, in_channels: int, groups: int, mask_type: MaskType) -> torch.Tensor:
    """(out, in) 0/1 mask of the connections at the current pixel. Channel k belongs to colour group k % groups
    (R, G, B for groups=3); mask A lets group g see groups < g (the first layer: never the sub-pixel itself),
    mask B groups <= g (later layers, whose group-g features already exclude sub-pixel g)."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' (first layer: the current sub-pixel is hidden) or 'B' (later layers), got {mask_type!r}")
    g_out = torch.arange(out_channels)[:, None] % groups
    g_in = torch.arange(in_channels)[None, :] % groups
    return (g_out > g_in if mask_type == "A" else g_out >= g_in).float()


class CentreMaskedConv2d(nn.Conv2d):
    """A convolution over a causal window whose last tap (bottom-right: the current pixel) is channel-masked.

    The caller pads so the last tap lands on the current pixel: the horizontal stack's 1 x (k//2 + 1) kernel sees
    the pixels to the left and, through `channel_mask`, the allowed colour groups of the pixel itself; a 1 x 1
    kernel is a masked 1 x 1 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], groups: int, mask_type: MaskType):
        super().__init__(in_channels, out_channels, kernel_size)
        mask = torch.ones_like(self.weight)
        mask[:, :, -1, -1] = channel_mask(out_channels, in_channels, groups, mask_type)
        self.mask_type = mask_type
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move features one row down (zeros in the first row): row i then holds what row i - 1 saw."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) over the two halves of the channels (van den Oord et al. 2016b, eq. 2)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One layer of the Gated PixelCNN: a vertical stack (rows above and the current row, fed to the horizontal
    stack only after a down-shift) and a horizontal stack (pixels to the left and, by the mask, the current one).

    The first layer (mask A) reads the image; later layers (mask B) read features and add a residual.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int, groups: int, mask_type: MaskType, cond_dim: int = 0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        if channels % groups:
            raise ValueError(f"channels={channels} must be a multiple of the {groups} colour groups")
        k, kh = kernel_size, kernel_size // 2 + 1
        self.k, self.kh = k, kh
        self.residual = mask_type == "B" and in_channels == channels
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (kh, k))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = CentreMaskedConv2d(in_channels, 2 * channels, (1, kh), groups, mask_type)
        self.h_out = CentreMaskedConv2d(channels, channels, (1, 1), groups, "B")
        self.cond = nn.Linear(cond_dim, 4 * channels) if cond_dim else None

    def forward(self, v: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        k, kh = self.k, self.kh
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, kh - 1, 0)))  # (B, 2F, H, W): rows <= i
        h_pre = self.h_conv(F.pad(h, (kh - 1, 0, 0, 0))) + self.v_to_h(down_shift(v_pre))  # rows < i, or row i left of j
        if self.cond is not None and c is not None:
            cv, ch = self.cond(c)[..., None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        h_new = self.h_out(gate(h_pre))
        return gate(v_pre), h_new + h if self.residual else h_new


class GatedPixelCNN(nn.Module):
    """x (B, in_channels, H, W) -> (B, out_channels, H, W) where output (i, j, group g) depends only on inputs
    before pixel (i, j) in raster order and on groups < g of pixel (i, j) itself.

    Output channel o belongs to colour group o % groups (so a head laid out parameter-major, p * C + c, works).
    `first_mask` exists for ablations and tests: "B" in the first layer leaks the current sub-pixel.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int = 64,
        n_layers: int = 8,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        groups: int = 1,
        cond_dim: int = 0,
        head_channels: int | None = None,
        first_mask: MaskType = "A",
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if out_channels % groups:
            raise ValueError(f"out_channels={out_channels} must be a multiple of the {groups} colour groups")
        self.groups = groups
        layers = [GatedLayer(in_channels, channels, first_kernel_size, groups, first_mask, cond_dim)]
        layers += [GatedLayer(channels, channels, kernel_size, groups, "B", cond_dim) for _ in range(n_layers - 1)]
        self.layers = nn.ModuleList(layers)
        hc = head_channels or channels
        hc += -hc % groups
        self.head = nn.Sequential(
            nn.ReLU(),
            CentreMaskedConv2d(channels, hc, (1, 1), groups, "B"),
            nn.ReLU(),
            CentreMaskedConv2d(hc, out_channels, (1, 1), groups, "B"),
        )

    @property
    def receptive_field(self) -> tuple[int, int]:
        """(rows above, columns either side) an output can depend on: with S = sum of k // 2 over the layers,
        the vertical stack reaches S rows up and S columns either side, the down-shift one row more."""
        s = sum(layer.k // 2 for layer in self.layers)
        return s + 1, s

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, c)
        return self.head(h)


def assert_causal(fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, int, int], groups: int) -> None:
    """Raise CausalityError when `fn` ((B, C, H, W) -> (B, P * groups, H, W), channel o in group o % groups)
    lets an output at (i, j, g) depend on an input at or after sub-pixel (i, j, g) in raster order.

    One backward pass per colour group through the output at the centre pixel: its gradient must vanish on
    every later input position (and on the current pixel's groups >= g). Cheap enough to run at build time.
    """
    C, H, W = shape
    x = torch.randn(1, C, H, W, requires_grad=True)
    i, j = H // 2, W // 2
    out = fn(x)
    for g in range(groups):
        (grad,) = torch.autograd.grad(out[0, g::groups, i, j].sum(), x, retain_graph=True)
        later = torch.zeros(C, H, W, dtype=torch.bool)
        later[:, i + 1 :] = True
        later[:, i, j + 1 :] = True
        later[:, i, j] = torch.arange(C) % groups >= g
        leak = grad[0].abs() * later
        if leak.max() > 0:
            c, r, col = (int(t) for t in torch.nonzero(leak)[0])
            raise CausalityError(
                f"output at pixel ({i}, {j}) colour group {g} depends on input channel {c} at pixel ({r}, {col}), "
                "which comes at or after it: the network is not autoregressive (a mask B in the first layer, "
                "or a convolution that is not masked, leaks the current or a future position)"
            )
