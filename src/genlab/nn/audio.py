"""1-D building blocks for waveforms: mu-law companding (ITU-T G.711), the WaveNet stack of gated dilated causal
convolutions with per-layer queues for fast generation (van den Oord et al. 2016; Paine et al. 2016), the DiffWave
denoiser (Kong et al. 2021) and the WaveGAN generator and discriminator with phase shuffle (Donahue et al. 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.embeddings import ClassEmbedding, NoiseEmbedding


# ------------------------------------------------------------------------------------------------------- mu-law
def mu_law_compress(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu): [-1, 1] -> [-1, 1], fine steps near 0 where speech lives."""
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mu_law_expand(f: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """The inverse of `mu_law_compress`: x = sign(f) ((1 + mu)^|f| - 1) / mu."""
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def mu_law_encode(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Samples in [-1, 1] -> codes 0..mu: k = round((f(x) + 1) mu / 2), clamped (values outside [-1, 1] saturate).

    >>> mu_law_encode(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([  0, 128, 255])
    """
    f = mu_law_compress(x.clamp(-1, 1), mu)
    return torch.round((f + 1) * (mu / 2)).long().clamp(0, mu)


def mu_law_decode(k: torch.Tensor, mu: int = 255, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Codes 0..mu -> the samples at their bin centres in the compressed domain: x = f^-1(2k / mu - 1)."""
    return mu_law_expand(k.to(dtype) * (2 / mu) - 1, mu)


def mu_law_bin_widths(mu: int = 255, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(mu + 1,) widths in x of the bins {x : mu_law_encode(x) = k}: f in [(2k - 1) / mu - 1, (2k + 1) / mu - 1] clipped
    to [-1, 1], mapped back by f^-1. They tile [-1, 1] (sum 2); the piecewise-uniform density P(k) / w_k on them is what
    turns a 256-way softmax over codes into a density on [-1, 1]."""
    k = torch.arange(mu + 1, dtype=dtype)
    lo = ((2 * k - 1) / mu - 1).clamp(-1, 1)
    hi = ((2 * k + 1) / mu - 1).clamp(-1, 1)
    return mu_law_expand(hi, mu) - mu_law_expand(lo, mu)


# ------------------------------------------------------------------------------------------------------- WaveNet
class WaveNetStack(nn.Module):
    """Logits of p(x_t | x_<t, y) over `bins` codes from the codes of x_<t: WaveNet's residual stack.

    The input at step t is an embedding of x_{t-1} (a start token at t = 0), so a layer stack of causal convolutions
    (kernel 2, dilation d, left zero-padding) sees only the past. Layer l computes, with the label's embedding h_y,
        z = tanh(W_f * u + V_f h_y) . sigmoid(W_g * u + V_g h_y),
    adds W_res z to its input (residual) and W_skip z to the skip sum; the head is ReLU-1x1-ReLU-1x1 on the skip sum.
    The output at t depends on x_{t - R} .. x_{t - 1}, R = `receptive_field` = 1 + sum of the dilations.

    `step` runs the same network one sample at a time with a queue of the last d inputs per layer (Paine et al. 2016,
    "Fast Wavenet"): O(layers) per sample instead of a pass over the whole past.
    """

    def __init__(
        self, bins: int, channels: int, skip_channels: int, dilations: Sequence[int], num_classes: int = 0, head_channels: int = 0
    ):
        super().__init__()
        if not dilations or min(dilations) < 1:
            raise ValueError(f"WaveNetStack needs dilations >= 1, got {list(dilations)}")
        C, S = channels, skip_channels
        self.bins, self.channels, self.dilations = bins, C, tuple(int(d) for d in dilations)
        self.embed = nn.Embedding(bins + 1, C)  # row `bins` is the start token
        self.convs = nn.ModuleList(nn.Conv1d(C, 2 * C, 2, dilation=d) for d in self.dilations)
        # The last layer's residual output would feed nothing: it has only a skip output.
        self.res = nn.ModuleList(nn.Conv1d(C, C, 1) for _ in self.dilations[:-1])
        self.skip = nn.ModuleList(nn.Conv1d(C, S, 1) for _ in self.dilations)
        self.cond = nn.Embedding(num_classes, 2 * C * len(self.dilations)) if num_classes else None
        H = head_channels or S
        self.out1 = nn.Conv1d(S, H, 1)
        self.out2 = nn.Conv1d(H, bins, 1)

    @property
    def receptive_field(self) -> int:
        """Samples x_{t-R} .. x_{t-1} the logits at t depend on: 1 (the input embedding) + sum of the dilations."""
        return 1 + sum(self.dilations)

    def cond_vectors(self, y: torch.Tensor | None) -> list[torch.Tensor | None]:
        """V h_y of every layer, (B, 2C) each, or None."""
        if self.cond is None:
            return [None] * len(self.dilations)
        return list(self.cond(y).chunk(len(self.dilations), dim=1))

    def forward(self, prev: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """prev (B, T): codes of x_{t-1} (the start token `bins` at t = 0) -> logits (B, bins, T) of x_t."""
        h = self.embed(prev).transpose(1, 2)  # (B, C, T)
        skip = 0
        for i, (conv, c) in enumerate(zip(self.convs, self.cond_vectors(y))):
            fg = conv(F.pad(h, (conv.dilation[0], 0)))  # (B, 2C, T), causal
            if c is not None:
                fg = fg + c[:, :, None]
            f, g = fg.chunk(2, dim=1)
            z = torch.tanh(f) * torch.sigmoid(g)
            skip = skip + self.skip[i](z)
            if i < len(self.res):
                h = h + self.res[i](z)
        return self.out2(F.relu(self.out1(F.relu(skip))))

    def start_queues(self, n: int, like: torch.Tensor) -> list[torch.Tensor]:
        """Empty queues (zeros = the causal padding): layer l's holds its last d_l inputs, (n, C, d_l)."""
        return [like.new_zeros(n, self.channels, d) for d in self.dilations]

    def step(self, prev: torch.Tensor, t: int, queues: list[torch.Tensor], cond: list[torch.Tensor | None]) -> torch.Tensor:
        """One step of `forward`: the codes x_{t-1} (n,) -> logits (n, bins) of x_t. Layer l reads its input from d_l
        steps ago out of slot t mod d_l of its queue and writes the current one there; `cond` is `cond_vectors(y)`."""
        h = self.embed(prev)  # (n, C)
        skip = 0
        for i, (conv, q, c) in enumerate(zip(self.convs, queues, cond)):
            slot = t % conv.dilation[0]
            past = q[:, :, slot].clone()
            q[:, :, slot] = h
            # The kernel-2 dilated conv at t: W[:, :, 0] u_{t-d} + W[:, :, 1] u_t + b.
            fg = F.linear(past, conv.weight[:, :, 0]) + F.linear(h, conv.weight[:, :, 1], conv.bias)
            if c is not None:
                fg = fg + c
            f, g = fg.chunk(2, dim=1)
            z = torch.tanh(f) * torch.sigmoid(g)
            skip = skip + F.linear(z, self.skip[i].weight[:, :, 0], self.skip[i].bias)
            if i < len(self.res):
                h = h + F.linear(z, self.res[i].weight[:, :, 0], self.res[i].bias)
        hidden = F.relu(F.linear(F.relu(skip), self.out1.weight[:, :, 0], self.out1.bias))
        return F.linear(hidden, self.out2.weight[:, :, 0], self.out2.bias)


# ------------------------------------------------------------------------------------------------------- DiffWave
def fold(x: torch.Tensor, p: int) -> torch.Tensor:
    """Space-to-depth on waveforms: (B, C, T) -> (B, C p, T / p), channel c p + j holding samples j, j + p, ... of c."""
    B, C, T = x.shape
    return x.view(B, C, T // p, p).permute(0, 1, 3, 2).reshape(B, C * p, T // p)


def unfold(x: torch.Tensor, p: int) -> torch.Tensor:
    """The inverse of `fold`: (B, C p, T / p) -> (B, C, T)."""
    B, Cp, L = x.shape
    return x.view(B, Cp // p, p, L).permute(0, 1, 3, 2).reshape(B, Cp // p, L * p)


class DiffWaveNet(nn.Module):
    """F(x, c_noise[, y][, cond]) for waveforms (B, C, T) -> (B, C, T): DiffWave's residual stack (Kong et al. 2021).

    Input 1x1 conv + ReLU to R channels; each of `layers` residual layers adds the projected diffusion-step (and class)
    embedding, applies a bidirectional dilated conv (kernel 3, dilation 2^(i mod dilation_cycle)) to 2R channels, the
    gate tanh . sigmoid, and a 1x1 conv to a residual half ((h + r) / sqrt 2) and a skip half; the skips are summed,
    scaled by 1 / sqrt(layers), and go through ReLU-1x1-ReLU-1x1 to the output. `patch` p > 1 folds p consecutive
    samples into channels first (`fold`), so the stack runs at T / p steps and its receptive field spans p times more
    samples: the way a CPU-size model sees a whole word.

    Example:
        >>> net = DiffWaveNet(1, channels=32, layers=6, dilation_cycle=3, patch=4)
        >>> net(torch.zeros(2, 1, 64), torch.zeros(2)).shape
        torch.Size([2, 1, 64])
    """

    def __init__(
        self,
        in_channels: int,
        *,
        channels: int = 64,
        layers: int = 12,
        dilation_cycle: int = 6,
        patch: int = 1,
        num_classes: int = 0,
        cond_channels: int = 0,
        emb_dim: int | None = None,
    ):
        super().__init__()
        R, emb_dim = channels, emb_dim or 4 * channels
        self.patch, self.cond_channels = patch, cond_channels
        self.noise_emb = NoiseEmbedding(min(128, 2 * R), emb_dim)
        self.class_emb = ClassEmbedding(num_classes, emb_dim) if num_classes else None
        self.inp = nn.Conv1d((in_channels + cond_channels) * patch, R, 1)
        self.dilations = tuple(2 ** (i % dilation_cycle) for i in range(layers))
        self.emb_proj = nn.ModuleList(nn.Linear(emb_dim, R) for _ in self.dilations)
        self.convs = nn.ModuleList(nn.Conv1d(R, 2 * R, 3, dilation=d, padding=d) for d in self.dilations)
        self.outs = nn.ModuleList(nn.Conv1d(R, 2 * R, 1) for _ in self.dilations)
        self.skip_out = nn.Conv1d(R, R, 1)
        self.out = nn.Conv1d(R, in_channels * patch, 1)

    @property
    def receptive_field(self) -> int:
        """Width in samples of the window an output sample sees: p (1 + 2 sum_l d_l); each kernel-3 layer reaches d_l
        (folded) steps to either side."""
        return self.patch * (1 + 2 * sum(self.dilations))

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None = None, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        p = self.patch
        if x.shape[-1] % p:
            raise ValueError(f"DiffWaveNet: patch={p} must divide the length {x.shape[-1]}")
        emb = self.noise_emb(c_noise)  # (B, E)
        if self.class_emb is not None:
            emb = emb + self.class_emb(y if y is not None else torch.full_like(c_noise, self.class_emb.null, dtype=torch.long))
        emb = F.silu(emb)
        if self.cond_channels:
            x = torch.cat([x, cond], dim=1)
        h = F.relu(self.inp(fold(x, p)))  # (B, R, T / p)
        skip = 0
        for proj, conv, out in zip(self.emb_proj, self.convs, self.outs):
            f, g = conv(h + proj(emb)[:, :, None]).chunk(2, dim=1)
            res, s = out(torch.tanh(f) * torch.sigmoid(g)).chunk(2, dim=1)
            h = (h + res) * math.sqrt(0.5)
            skip = skip + s
        skip = skip * math.sqrt(1 / len(self.dilations))
        return unfold(self.out(F.relu(self.skip_out(F.relu(skip)))), p)


# ------------------------------------------------------------------------------------------------------- WaveGAN
def phase_shuffle(
    x: torch.Tensor, radius: int, shifts: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """WaveGAN's phase shuffle: example b of x (B, C, T) moved by n_b ~ U{-radius..radius} samples,
    out[b, :, t] = x[b, :, t - n_b], the samples shifted in from outside filled by reflection (x[-i] = x[i],
    x[T - 1 + i] = x[T - 1 - i]). `shifts` (B,) gives the n_b explicitly. It keeps the discriminator from telling real
    from fake by the phase of the generator's periodic upsampling artefacts.

    >>> phase_shuffle(torch.arange(5.0).view(1, 1, 5), 2, shifts=torch.tensor([2]))
    tensor([[[2., 1., 0., 1., 2.]]])
    """
    if radius == 0:
        return x
    B, C, T = x.shape
    if shifts is None:
        dev = generator.device if generator is not None else x.device
        shifts = torch.randint(-radius, radius + 1, (B,), generator=generator, device=dev)
    padded = F.pad(x, (radius, radius), mode="reflect")  # (B, C, T + 2 radius)
    idx = (radius - shifts.to(x.device))[:, None] + torch.arange(T, device=x.device)  # (B, T)
    return padded.gather(2, idx[:, None, :].expand(B, C, T))


def _conv_length(length: int, kernel: int, stride: int) -> int:
    """Output length of Conv1d(kernel, stride, padding=(kernel - stride + 1) // 2)."""
    pad = (kernel - stride + 1) // 2
    return (length + 2 * pad - kernel) // stride + 1


class WaveGANGenerator(nn.Module):
    """z (B, latent) [+ class embedding] -> Linear -> ReLU -> channels[-1] x (T / s^L) -> L transposed convs (kernel k,
    stride s, ReLU between) -> tanh -> the first T samples: WaveGAN's generator (kernel 25, stride 4), without batch-norm.

    Level j's transposed conv outputs channels[j - 1] (the last outputs the waveform), mirroring the discriminator.
    """

    def __init__(
        self,
        latent_dim: int,
        out_channels: int,
        length: int,
        channels: Sequence[int],
        num_classes: int = 0,
        kernel: int = 25,
        stride: int = 4,
    ):
        super().__init__()
        L = len(channels)
        self.length = length
        self.base = -(-length // stride**L)  # ceil: the generator makes base * s^L >= T samples and crops
        self.embed = nn.Embedding(num_classes, latent_dim) if num_classes else None
        self.fc = nn.Linear(latent_dim * (2 if num_classes else 1), channels[-1] * self.base)
        pad = (kernel - stride + 1) // 2
        out_pad = stride - kernel + 2 * pad  # (l - 1) s - 2 pad + k + out_pad = l s
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(channels[j], channels[j - 1] if j > 0 else out_channels, kernel, stride, pad, output_padding=out_pad)
            for j in range(L - 1, -1, -1)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        h = F.relu(self.fc(z).view(len(z), -1, self.base))
        for i, up in enumerate(self.ups):
            h = up(h)
            if i < len(self.ups) - 1:
                h = F.relu(h)
        return torch.tanh(h[:, :, : self.length])


class WaveGANDiscriminator(nn.Module):
    """x (B, C, T) -> L convs (kernel k, stride s; LeakyReLU 0.2; phase shuffle of radius r after each but the last) ->
    flatten -> Linear [+ projection of the time-summed features on the label's embedding] -> logit (B,)."""

    def __init__(
        self,
        in_channels: int,
        length: int,
        channels: Sequence[int],
        num_classes: int = 0,
        kernel: int = 25,
        stride: int = 4,
        shuffle: int = 2,
    ):
        super().__init__()
        pad = (kernel - stride + 1) // 2
        self.shuffle = shuffle
        self.convs = nn.ModuleList()
        width, n = in_channels, length
        for c in channels:
            self.convs.append(nn.Conv1d(width, c, kernel, stride, pad))
            width, n = c, _conv_length(n, kernel, stride)
        if n < 1:
            raise ValueError(f"WaveGANDiscriminator: {len(channels)} stride-{stride} levels reduce {length} samples to nothing")
        self.linear = nn.Linear(width * n, 1, bias=False)
        self.embed = nn.Embedding(num_classes, width) if num_classes else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = F.leaky_relu(conv(h), 0.2)
            if self.training and i < len(self.convs) - 1:
                h = phase_shuffle(h, self.shuffle)
        out = self.linear(h.flatten(1)).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(y) * h.sum(2)).sum(1)
        return out
