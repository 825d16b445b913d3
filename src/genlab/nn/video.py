"""The SimVP network (Gao et al. 2022, "SimVP: Simpler yet Better Video Prediction"): a per-frame convolutional encoder,
a translator that mixes the stacked frames' features with 2-D convolutions, and a per-frame decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

from genlab.nn.convnets import ResBlock
from genlab.nn.embeddings import ClassEmbedding, NoiseEmbedding
from genlab.nn.unet import Attention, _groups
from genlab.nn.unet import ResBlock as EmbResBlock


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


class TemporalMix(nn.Module):
    """Mixing along time at every pixel, residual, for features (B T, c, H, W) of clips of T frames:
      - "attention": multi-head self-attention over the T frames of each pixel, on GroupNorm'd features plus a learned
        embedding of the frame index (attention alone cannot tell the frames' order);
      - "conv": a 1-D convolution over the T frames (kernel 3, zero padding).
    The output projection starts small (a tenth of its default initialisation), so that the block starts close to the
    identity and the network close to a per-frame image denoiser (Ho et al. 2022, "Video Diffusion Models": factorised
    space-time blocks)."""

    def __init__(self, channels: int, frames: int, kind: str = "attention", heads: int = 4):
        super().__init__()
        if kind not in ("attention", "conv"):
            raise ValueError(f"TemporalMix: kind must be 'attention' or 'conv', got {kind!r}")
        if kind == "attention" and channels % heads:
            raise ValueError(f"temporal attention: {channels} channels do not split into {heads} heads")
        self.kind, self.frames, self.heads = kind, frames, heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        if kind == "attention":
            self.pos = nn.Parameter(torch.randn(frames, channels) * 0.02)
            self.qkv = nn.Linear(channels, 3 * channels)
            self.proj = nn.Linear(channels, channels)
        else:
            self.conv = nn.Conv1d(channels, channels, 3, padding=1)
            self.proj = nn.Conv1d(channels, channels, 1)
        with torch.no_grad():
            self.proj.weight.mul_(0.1)
            self.proj.bias.zero_()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        BT, c, H, W = h.shape
        T = self.frames
        z = self.norm(h).view(BT // T, T, c, H, W).permute(0, 3, 4, 1, 2).reshape(-1, T, c)  # (B H W, T, c)
        if self.kind == "attention":
            q, k, v = self.qkv(z + self.pos).view(z.shape[0], T, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            out = self.proj(nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, T, c))
        else:
            out = self.proj(nn.functional.silu(self.conv(z.transpose(1, 2)))).transpose(1, 2)
        return h + out.view(BT // T, H, W, T, c).permute(0, 3, 4, 1, 2).reshape(BT, c, H, W)


class SpaceTimeUNet(nn.Module):
    """F(x, c_noise[, y][, cond]) for clips (B, T, C, H, W) -> (B, T, C, H, W): a factorised space-time UNet (Ho et al.
    2022). Every level holds `blocks` pairs of a per-frame residual block (2-D convolutions, scale-shift conditioning on
    the noise level and the class, genlab.nn.unet's ResBlock), per-frame self-attention at the frame sizes (smaller side,
    `size` at the top) listed in `attn_resolutions`, and a `TemporalMix` block; the resolution halves per level in space
    only (the frames are kept). `cond_channels` extra channels per frame (e.g. the given frames and their mask)
    are concatenated to x's channels. `patch` > 1 folds each frame into patch x patch pixel blocks first (space-to-depth,
    C x H x W -> C p^2 x H/p x W/p, the UNet's top level at H/p) and unfolds the output the same way.

    Example:
        >>> net = SpaceTimeUNet(1, frames=4, channels=(8, 16))
        >>> net(torch.zeros(2, 4, 1, 16, 16), torch.zeros(2)).shape
        torch.Size([2, 4, 1, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        *,
        frames: int,
        channels: tuple[int, ...] = (32, 64),
        blocks: int = 1,
        temporal: str = "attention",
        heads: int = 4,
        attn_resolutions: tuple[int, ...] = (),
        size: int = 32,
        num_classes: int = 0,
        cond_channels: int = 0,
        dropout: float = 0.0,
        patch: int = 1,
    ):
        super().__init__()
        if not channels or blocks < 1:
            raise ValueError("SpaceTimeUNet needs at least one level and one block per level")
        if patch < 1 or size % patch:
            raise ValueError(f"SpaceTimeUNet: patch={patch} must be >= 1 and divide the frame size {size}")
        emb_dim = 4 * channels[0]
        self.frames, self.blocks, self.levels, self.cond_channels, self.patch = frames, blocks, len(channels), cond_channels, patch
        self.noise_emb = NoiseEmbedding(channels[0], emb_dim)
        self.class_emb = ClassEmbedding(num_classes, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d((in_channels + cond_channels) * patch**2, channels[0], 3, padding=1)
        size //= patch

        def block(c_in: int, c_out: int, res: int) -> nn.ModuleList:
            space = Attention(c_out, heads) if res in attn_resolutions else nn.Identity()
            return nn.ModuleList([EmbResBlock(c_in, c_out, emb_dim, dropout), space, TemporalMix(c_out, frames, temporal, heads)])

        self.down, self.downsample, skips, c, res = nn.ModuleList(), nn.ModuleList(), [], channels[0], size
        for i, ch in enumerate(channels):
            for _ in range(blocks):
                self.down.append(block(c, ch, res))
                c = ch
                skips.append(c)
            last = i == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            res = res if last else (res + 1) // 2
        self.mid = nn.ModuleList([block(c, c, res), block(c, c, res)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, ch in reversed(list(enumerate(channels))):
            for _ in range(blocks):
                self.up.append(block(c + skips.pop(), ch, res))
                c = ch
            res = res * 2
            self.upsample.append(nn.Conv2d(c, channels[i - 1], 3, padding=1) if i > 0 else nn.Identity())
            c = channels[i - 1] if i > 0 else c
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, in_channels * patch**2, 3, padding=1)

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, T, C, H, W = x.shape
        emb = self.noise_emb(c_noise)
        if self.class_emb is not None:
            emb = emb + self.class_emb(y if y is not None else torch.full_like(c_noise, self.class_emb.null, dtype=torch.long))
        emb = emb.repeat_interleave(T, 0)  # (B T, E): every frame of a clip shares the clip's conditioning
        if self.cond_channels:
            x = torch.cat([x, cond], dim=2)
        if (H % self.patch) or (W % self.patch):
            raise ValueError(f"SpaceTimeUNet: frames of {H} x {W} do not split into {self.patch} x {self.patch} patches")
        h = self.conv_in(nn.functional.pixel_unshuffle(x.flatten(0, 1), self.patch))
        skips, k = [], 0
        for level in range(self.levels):
            for _ in range(self.blocks):
                res, space, mix = self.down[k]
                h = mix(space(res(h, emb)))
                skips.append(h)
                k += 1
            h = self.downsample[level](h)
        for res, space, mix in self.mid:
            h = mix(space(res(h, emb)))
        k = 0
        for level in range(self.levels):
            for _ in range(self.blocks):
                res, space, mix = self.up[k]
                h = mix(space(res(torch.cat([h, skips.pop()], dim=1), emb)))
                k += 1
            if level < self.levels - 1:
                h = nn.functional.interpolate(self.upsample[level](h), size=skips[-1].shape[-2:], mode="nearest")
        out = self.conv_out(nn.functional.silu(self.norm_out(h)))
        return nn.functional.pixel_shuffle(out, self.patch).view(B, T, C, H, W)
