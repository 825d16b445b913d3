"""Invertible transforms with exact log-determinants: couplings (NICE, RealNVP, NSF), autoregressive (MAF, NSF-AR),
ActNorm and LU 1x1 convolutions (Glow), permutations, squeeze, batch-norm flow layers, logit pre-processing and
uniform / variational dequantisation (Flow++).

Convention: `t(x, context) -> (z, log|det dz/dx|)` maps data towards the base distribution (the density
direction); `t.inverse(z, context) -> (x, log|det dx/dz|)` maps back (the sampling direction). Tensors are
(B, D) vectors or (B, C, H, W) images; every transform acts along dim 1 (features or channels); log-dets are (B,).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab.models.flow.splines import rq_spline
from genlab.nn.made import MADE

Tensor = torch.Tensor


def _sum_per_example(t: Tensor) -> Tensor:
    return t.flatten(1).sum(1)


def _spatial(x: Tensor) -> int:
    """Number of positions per channel: 1 for vectors, H * W for images."""
    return math.prod(x.shape[2:])


class Transform(nn.Module):
    """An invertible map with its log-determinant (see the module docstring for the convention)."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class Compose(Transform):
    """t_n o ... o t_1: log-dets add up; the inverse runs the list backwards."""

    def __init__(self, transforms: Sequence[Transform]):
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, ld = t(x, context)
            total = total + ld
        return x, total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[0])
        for t in reversed(self.transforms):
            z, ld = t.inverse(z, context)
            total = total + ld
        return z, total


# ---------------------------------------------------------------- elementwise maps g(x; theta) of coupling / AR layers
class Elementwise(nn.Module):
    """A scalar bijection applied elementwise with `params_per_dim` parameters per element (last axis of theta)."""

    params_per_dim: int = 0

    def forward(self, x: Tensor, theta: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class AffineMap(Elementwise):
    """y = x * exp(log_s) + t (RealNVP, Dinh et al. 2017), log_s = c tanh(raw / c) soft-clamped to (-c, c)."""

    params_per_dim = 2

    def __init__(self, clamp: float = 3.0):
        super().__init__()
        self.clamp = clamp

    def forward(self, x: Tensor, theta: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        shift, raw = theta[..., 0], theta[..., 1]
        log_s = self.clamp * torch.tanh(raw / self.clamp)
        if inverse:
            return (x - shift) * torch.exp(-log_s), -log_s
        return x * torch.exp(log_s) + shift, log_s


class AdditiveMap(Elementwise):
    """y = x + t, volume preserving (NICE, Dinh et al. 2015)."""

    params_per_dim = 1

    def forward(self, x: Tensor, theta: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        shift = theta[..., 0]
        return (x - shift if inverse else x + shift), torch.zeros_like(x)


class SplineMap(Elementwise):
    """Monotonic rational-quadratic spline with K bins on [-B, B], identity tails (Durkan et al. 2019)."""

    def __init__(self, bins: int = 8, bound: float = 5.0):
        super().__init__()
        self.bins, self.bound = bins, bound
        self.params_per_dim = 3 * bins - 1

    def forward(self, x: Tensor, theta: Tensor, inverse: bool = False) -> tuple[Tensor, Tensor]:
        return rq_spline(x, theta, self.bound, inverse=inverse)


# --------------------------------------------------------------------------------------------- conditioner networks
def near_zero_(layer: nn.Module, std: float = 1e-3) -> None:
    """Start a conditioner's last layer near zero, so each layer starts near the identity (Glow starts at exactly zero;
    a tiny non-zero weight keeps a gradient flowing to the earlier layers from the first step)."""
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)


class MLPConditioner(nn.Module):
    """(x_a (B, d_a), context (B, c)) -> (B, out): an MLP whose last layer starts at zero (the layer starts as identity)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int], context_dim: int = 0, activation: str = "relu"):
        super().__init__()
        from genlab.nn.mlp import MLP

        self.net = MLP(in_dim + context_dim, out_dim, hidden, activation=activation)
        near_zero_(self.net[-1])

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x if context is None else torch.cat([x, context], dim=1))


class ConvConditioner(nn.Module):
    """Glow's coupling network: 3x3 conv -> ReLU -> 1x1 conv -> ReLU -> zero-initialised 3x3 conv; a context vector
    (e.g. a one-hot class) enters as a per-channel bias after the first conv."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, context_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.conv3 = nn.Conv2d(hidden, out_channels, 3, padding=1)
        near_zero_(self.conv3)
        self.context = nn.Linear(context_dim, hidden) if context_dim else None

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.conv1(x)
        if self.context is not None:
            h = h + self.context(context)[:, :, None, None]
        return self.conv3(F.relu(self.conv2(F.relu(h))))


Conditioner = Callable[[int, int], nn.Module]  # (in_features, out_features) -> network(x_a, context)


# ------------------------------------------------------------------------------------------------------- couplings
class Coupling(Transform):
    """Coupling layer: x = (x_a, x_b) split along dim 1; z_a = x_a, z_b = g(x_b; theta(x_a, context)).

    The halves are [:C//2] and [C//2:]; `swap` conditions on the second half instead. `g` is an AffineMap (RealNVP,
    Glow), AdditiveMap (NICE) or SplineMap (NSF coupling). Inverse costs one network evaluation, like the forward.
    """

    def __init__(self, channels: int, make_net: Conditioner, g: Elementwise, swap: bool = False):
        super().__init__()
        if channels < 2:
            raise ValueError(f"a coupling layer needs at least 2 features/channels to split, got {channels}")
        self.g, self.swap = g, swap
        self.c1 = channels // 2
        c_a, c_b = (channels - self.c1, self.c1) if swap else (self.c1, channels - self.c1)
        self.c_b = c_b
        self.net = make_net(c_a, c_b * g.params_per_dim)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        first, second = x[:, : self.c1], x[:, self.c1 :]
        return (second, first) if self.swap else (first, second)

    def _join(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([b, a] if self.swap else [a, b], dim=1)

    def _theta(self, a: Tensor, context: Tensor | None) -> Tensor:
        h = self.net(a, context)  # (B, c_b * P, *spatial)
        return h.view(h.shape[0], self.g.params_per_dim, self.c_b, *h.shape[2:]).movedim(1, -1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = self._split(x)
        zb, ld = self.g(b, self._theta(a, context))
        return self._join(a, zb), _sum_per_example(ld)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = self._split(z)
        xb, ld = self.g(b, self._theta(a, context), inverse=True)
        return self._join(a, xb), _sum_per_example(ld)


class CheckerboardCoupling(Transform):
    """RealNVP's spatial checkerboard coupling for images: pixels with (i + j) % 2 == parity condition the others."""

    def __init__(self, channels: int, make_net: Conditioner, g: Elementwise, parity: int = 0):
        super().__init__()
        self.g, self.parity, self.channels = g, parity, channels
        self.net = make_net(channels, channels * g.params_per_dim)

    def _mask(self, x: Tensor) -> Tensor:
        i = torch.arange(x.shape[2], device=x.device)[:, None]
        j = torch.arange(x.shape[3], device=x.device)[None, :]
        return ((i + j) % 2 == self.parity).to(x.dtype)  # 1 = conditioning pixel

    def _couple(self, x: Tensor, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        m = self._mask(x)
        h = self.net(x * m, context)
        theta = h.view(h.shape[0], self.g.params_per_dim, self.channels, *h.shape[2:]).movedim(1, -1)
        y, ld = self.g(x, theta, inverse=inverse)
        return m * x + (1 - m) * y, _sum_per_example((1 - m) * ld)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(x, context, inverse=False)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._couple(z, context, inverse=True)


class Autoregressive(Transform):
    """z_i = g(x_i; theta_i(x_<i, context)) with theta from a MADE: MAF with an AffineMap (Papamakarios et al. 2017),
    NSF-AR with a SplineMap (Durkan et al. 2019). The density direction costs one pass, sampling D passes."""

    def __init__(self, dim: int, g: Elementwise, hidden: Sequence[int], context_dim: int = 0, order: Tensor | None = None):
        super().__init__()
        self.g, self.dim = g, dim
        self.made = MADE(dim, g.params_per_dim, hidden, context_dim, order)
        near_zero_(self.made.out)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z, ld = self.g(x, self.made(x, context))
        return z, ld.sum(1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = torch.zeros_like(z)
        for _ in range(self.dim):  # after pass i the first i + 1 coordinates in the MADE's order are exact
            x, ld = self.g(z, self.made(x, context), inverse=True)
        return x, ld.sum(1)


# --------------------------------------------------------------------------------------- normalisation, mixing, shape
class ActNorm(Transform):
    """z = (x + b) * exp(log_s) per channel (Glow, Kingma & Dhariwal 2018); the first training batch sets b and
    log_s so that its outputs have zero mean and unit variance per channel (data-dependent initialisation)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.zeros(()))
        self.eps = eps

    def _view(self, p: Tensor, x: Tensor) -> Tensor:
        return p.view(1, -1, *([1] * (x.dim() - 2)))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        dims = [d for d in range(x.dim()) if d != 1]
        self.bias.copy_(-x.mean(dims))
        self.log_scale.copy_(-torch.log(x.std(dims) + self.eps))
        self.initialized.fill_(1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        z = (x + self._view(self.bias, x)) * torch.exp(self._view(self.log_scale, x))
        return z, (self.log_scale.sum() * _spatial(x)).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = z * torch.exp(-self._view(self.log_scale, z)) - self._view(self.bias, z)
        return x, (-self.log_scale.sum() * _spatial(z)).expand(z.shape[0])


class LUInvertibleLinear(Transform):
    """z = W x along dim 1 with W = P L (U + diag(sign * exp(log_s))) (Glow's LU-parametrised invertible 1x1
    convolution for images; an LU linear layer for vectors); log|det W| = sum(log_s) per position."""

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        q = torch.linalg.qr(torch.randn(channels, channels, generator=generator))[0]
        P, L, U = torch.linalg.lu(q)
        s = torch.diagonal(U)
        self.register_buffer("P", P)
        self.register_buffer("sign", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.L = nn.Parameter(L)
        self.U = nn.Parameter(torch.triu(U, 1))
        self.log_s = nn.Parameter(torch.log(s.abs()))

    def weight(self) -> Tensor:
        eye = torch.eye(self.P.shape[0], dtype=self.L.dtype, device=self.L.device)
        L = self.L * self.lower_mask + eye
        U = self.U * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return self.P @ L @ U

    @staticmethod
    def _mix(x: Tensor, W: Tensor) -> Tensor:
        if x.dim() == 4:
            return F.conv2d(x, W[:, :, None, None])
        return x @ W.T

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(x, self.weight()), (self.log_s.sum() * _spatial(x)).expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._mix(z, torch.linalg.inv(self.weight())), (-self.log_s.sum() * _spatial(z)).expand(z.shape[0])


class Permutation(Transform):
    """A fixed permutation of dim 1 (reverse or random); log-det 0."""

    def __init__(self, channels: int, kind: str = "reverse", generator: torch.Generator | None = None):
        super().__init__()
        perm = torch.arange(channels - 1, -1, -1) if kind == "reverse" else torch.randperm(channels, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[:, self.inv_perm], z.new_zeros(z.shape[0])


class Squeeze(Transform):
    """Space-to-depth (Dinh et al. 2017): (B, C, H, W) -> (B, 4C, H/2, W/2), each 2x2 patch into channels."""

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B, C, H, W = x.shape
        if H % 2 or W % 2:
            raise ValueError(f"squeeze needs even height and width, got {H}x{W}")
        z = x.view(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 4 * C, H // 2, W // 2)
        return z, x.new_zeros(B)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B, C4, h, w = z.shape
        x = z.view(B, C4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(B, C4 // 4, 2 * h, 2 * w)
        return x, z.new_zeros(B)


class BatchNormFlow(Transform):
    """Batch normalisation as a flow layer (Dinh et al. 2017; Papamakarios et al. 2017): batch statistics while
    training (updating running averages), running averages in eval mode and for the inverse.
    z = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta."""

    def __init__(self, channels: int, momentum: float = 0.05, eps: float = 1e-5):
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.momentum, self.eps = momentum, eps

    def _view(self, p: Tensor, x: Tensor) -> Tensor:
        return p.view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training:
            dims = [d for d in range(x.dim()) if d != 1]
            m, v = x.mean(dims), x.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(m.detach(), self.momentum)
                self.running_var.lerp_(v.detach(), self.momentum)
        else:
            m, v = self.running_mean, self.running_var
        z = (x - self._view(m, x)) * torch.rsqrt(self._view(v, x) + self.eps) * torch.exp(self._view(self.log_gamma, x))
        z = z + self._view(self.beta, x)
        ld = (self.log_gamma - 0.5 * torch.log(v + self.eps)).sum() * _spatial(x)
        return z, ld.expand(x.shape[0])

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        m, v = self.running_mean, self.running_var
        x = (z - self._view(self.beta, z)) * torch.exp(-self._view(self.log_gamma, z)) * torch.sqrt(self._view(v, z) + self.eps)
        x = x + self._view(m, z)
        ld = -(self.log_gamma - 0.5 * torch.log(v + self.eps)).sum() * _spatial(z)
        return x, ld.expand(z.shape[0])


class Logit(Transform):
    """Logit pre-processing for images in [-1, 1] (Dinh et al. 2017): p = alpha + (1 - 2 alpha)(x + 1) / 2, z = logit(p);
    log|dz/dx| = log((1 - 2 alpha) / 2) - log p - log(1 - p) per element, so densities stay on the [-1, 1] scale."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError(f"logit alpha must be in [0, 0.5), got {alpha}")
        self.alpha = alpha

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * (x + 1) / 2
        z = torch.log(p) - torch.log1p(-p)
        ld = math.log((1 - 2 * self.alpha) / 2) - torch.log(p) - torch.log1p(-p)
        return z, _sum_per_example(ld)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = torch.sigmoid(z)
        x = (p - self.alpha) / (1 - 2 * self.alpha) * 2 - 1
        ld = F.logsigmoid(z) + F.logsigmoid(-z) - math.log((1 - 2 * self.alpha) / 2)
        return x, _sum_per_example(ld)


# ---------------------------------------------------------------------------------------------------- dequantisation
def to_integers(x: Tensor) -> Tensor:
    """8-bit images shown as x_int / 127.5 - 1 -> the integers x_int in {0, ..., 255} (as floats)."""
    return torch.round((x + 1) * 127.5).clamp(0, 255)


class UniformDequantization(nn.Module):
    """x_int -> x = (x_int + u) / 128 - 1, u ~ U[0, 1)^D, log q(u) = 0 (Theis et al. 2016)."""

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device) if generator is not None else torch.rand_like(x)
        return (to_integers(x) + u) / 128 - 1, x.new_zeros(x.shape[0])


class VariationalDequantization(nn.Module):
    """u ~ q(u | x_int) = sigmoid(mu(x) + sigma(x) * eps), eps ~ N(0, I) (Flow++, Ho et al. 2019, with a one-layer
    conditional flow); returns x = (x_int + u) / 128 - 1 and log q(u | x_int) per example, so that
    log P(x_int) >= E_q[log p(x) - D log 128 - log q(u | x_int)]."""

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.net = ConvConditioner(channels, 2 * channels, hidden)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        xi = to_integers(x)
        mu, log_sigma = self.net(xi / 127.5 - 1).chunk(2, dim=1)
        log_sigma = 3 * torch.tanh(log_sigma / 3)
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) if generator is not None else torch.randn_like(x)
        v = mu + torch.exp(log_sigma) * eps
        u = torch.sigmoid(v)
        log_q = -0.5 * eps.pow(2) - 0.5 * math.log(2 * math.pi) - log_sigma - (F.logsigmoid(v) + F.logsigmoid(-v))
        return (xi + u) / 128 - 1, _sum_per_example(log_q)
