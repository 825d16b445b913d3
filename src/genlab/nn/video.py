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


class ConvLSTMCell(nn.Module):
    """One ConvLSTM layer (Shi et al. 2015, eq. 3, without the peephole terms, as OpenSTL's baseline):

        [i, f, g, o] = W * [x_t, h_{t-1}] + b      (one k x k convolution over the concatenated maps)
        c_t = sigma(f) . c_{t-1} + sigma(i) . tanh(g),      h_t = sigma(o) . tanh(c_t)

    The forget gate's bias starts at 1 (Jozefowicz et al. 2015) so that the cell keeps its memory early in training.
    """

    def __init__(self, c_in: int, hidden: int, kernel: int = 3):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"ConvLSTMCell: kernel must be odd to keep the map size, got {kernel}")
        self.hidden = hidden
        self.gates = nn.Conv2d(c_in + hidden, 4 * hidden, kernel, padding=kernel // 2)
        with torch.no_grad():
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class ConvLSTMNet(nn.Module):
    """Context clips (B, T_in, C, H, W) -> predicted clips (B, T_out, C, H, W) by a stack of ConvLSTM layers rolled out
    frame by frame (the encoding-forecasting network of Shi et al. 2015 in OpenSTL's form).

    Each frame is folded into patches (space-to-depth by `patch`: C x H x W -> C p^2 x H/p x W/p); at step t the stack
    reads frame t (a given frame while t < T_in, its own last prediction after) and a 1 x 1 convolution of the top
    layer's h_t predicts frame t + 1. The prediction of frame t + 1 depends only on the given frames and the
    predictions before it.
    """

    def __init__(self, channels: int, t_in: int, t_out: int, *, hidden: tuple[int, ...] = (32, 32), kernel: int = 3, patch: int = 2):
        super().__init__()
        self.t_in, self.t_out, self.patch = t_in, t_out, patch
        c = channels * patch * patch
        widths = (c, *hidden)
        self.cells = nn.ModuleList(ConvLSTMCell(a, b, kernel) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Conv2d(hidden[-1], c, 1)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        B, T, C, H, W = context.shape
        p = self.patch
        frames = nn.functional.pixel_unshuffle(context.flatten(0, 1), p).unflatten(0, (B, T))
        states: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.cells)
        preds: list[torch.Tensor] = []
        x = frames[:, 0]
        for t in range(T + self.t_out - 1):
            h = x
            for k, cell in enumerate(self.cells):
                states[k] = cell(h, states[k])
                h = states[k][0]
            y = self.out(h)  # frame t + 1
            if t + 1 >= T:
                preds.append(y)
            x = frames[:, t + 1] if t + 1 < T else y
        out = torch.stack(preds, 1).flatten(0, 1)
        return nn.functional.pixel_shuffle(out, p).reshape(B, self.t_out, C, H, W)
