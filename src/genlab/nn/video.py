"""The SimVP network (Gao et al. 2022, "SimVP: Simpler yet Better Video Prediction"): a per-frame convolutional encoder,
a translator that mixes the stacked frames' features with 2-D convolutions, and a per-frame decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.nn.convnets import ResBlock


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(math.gcd(8, c_out), c_out), nn.SiLU())


class SimVPNet(nn.Module):
    """Context clips (B, T_in, C, H, W) -> predicted clips (B, T_out, C, H, W).

    Encoder (shared over frames): a 3x3 conv to `hidden` channels, then `levels` stride-2 convs: H -> H / 2^levels.
    Translator: the T_in feature maps stacked as T_in * hidden channels -> `translator_width` -> `blocks` residual blocks
    -> T_out * hidden channels (all frames see each other at the low resolution). Decoder (shared over frames):
    `levels` x2 upsamplings, then the full-resolution features of the last context frame are added (SimVP's skip
    connection, taken from the frame closest in time) before the output 3x3 conv. Linear output.
    """

    def __init__(
        self, channels: int, t_in: int, t_out: int, *, hidden: int = 32, levels: int = 2, translator_width: int = 128, blocks: int = 2
    ):
        super().__init__()
        self.t_in, self.t_out, self.hidden = t_in, t_out, hidden
        self.stem = _conv(channels, hidden)
        self.down = nn.Sequential(*[_conv(hidden, hidden, stride=2) for _ in range(levels)])
        self.translator = nn.Sequential(
            _conv(t_in * hidden, translator_width),
            *[ResBlock(translator_width) for _ in range(blocks)],
            nn.Conv2d(translator_width, t_out * hidden, 3, padding=1),
        )
        self.up = nn.Sequential(*[nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(hidden, hidden)) for _ in range(levels)])
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = context.shape
        skip = self.stem(context.flatten(0, 1))  # (B T_in, hid, H, W)
        z = self.down(skip)  # (B T_in, hid, h, w)
        h, w = z.shape[-2:]
        z = self.translator(z.reshape(B, T * self.hidden, h, w)).reshape(B * self.t_out, self.hidden, h, w)
        up = self.up(z)  # (B T_out, hid, H, W)
        last = skip.reshape(B, T, self.hidden, H, W)[:, -1:].expand(B, self.t_out, self.hidden, H, W).flatten(0, 1)
        return self.out(up + last).reshape(B, self.t_out, C, H, W)
