"""2D toy distributions with exact samplers and log-densities, registered as datasets. Layouts
follow FFJORD (Grathwohl et al., 2019) and, for the pinwheel, Johnson et al. (2016)."""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.errors import DataError, unknown
from genlab.registry import register_dataset
from genlab.spec import DataSpec

TOY_NAMES = ("moons", "circles", "8gaussians", "25gaussians", "checkerboard", "swissroll", "pinwheel", "2spirals")

Curve = Callable[[Tensor], Tensor]  # u in [0, 1), shape (m,) float64 -> points (m, 2)


def _check_points(x: Tensor) -> None:
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"expected points of shape (n, 2), got {tuple(x.shape)}")


class Toy2D(ABC):
    """A distribution on R^2 with an exact sampler and an exact (or quadrature-exact) log-density."""

    name: str

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n points, float32 (n, 2); a function of the generator's state alone."""

    @abstractmethod
    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) in nats for points x (n, 2), in x's dtype (use float64 for maths checks)."""

    def entropy(self, n: int = 20_000, seed: int = 0) -> float:
        """Differential entropy in nats, estimated as -mean log p over n samples drawn with `seed`
        (standard error about std(log p) / sqrt(n), a few thousandths of a nat at the default)."""
        x = self.sample(n, torch.Generator().manual_seed(seed)).double()
        return -self.log_prob(x).mean().item()


def _mixture_log_prob(x: Tensor, centres: Tensor, std: float, log_weights: Tensor | None = None, chunk: int = 4096) -> Tensor:
    """log sum_k w_k N(x; c_k, std^2 I) (equal weights by default), chunked over x.

    -|x - c|^2 / 2 std^2 is expanded as (x.c - |c|^2 / 2) / std^2 - |x|^2 / 2 std^2 (one matmul);
    float64 keeps the cancellation harmless.
    """
    _check_points(x)
    c = centres.double()
    log_w = torch.full((len(c),), -math.log(len(c)), dtype=torch.float64) if log_weights is None else log_weights
    bias = log_w - 0.5 * c.square().sum(1) / std**2
    out = [
        torch.logsumexp(torch.addmm(bias, xb, c.T, alpha=1 / std**2), 1) - 0.5 * xb.square().sum(1) / std**2
        for xb in x.double().split(chunk)
    ]
    return (torch.cat(out) - math.log(2 * math.pi * std**2)).to(x.dtype) if out else x.new_zeros(0)


class GaussianMixture2D(Toy2D):
    """Equal-weight mixture of isotropic Gaussians N(c_k, std^2 I)."""

    def __init__(self, name: str, centres: Tensor, std: float):
        self.name, self.centres, self.std = name, centres.double(), std

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.randint(len(self.centres), (n,), generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.centres[k] + self.std * eps).float()

    def log_prob(self, x: Tensor) -> Tensor:
        return _mixture_log_prob(x, self.centres, self.std)


class Checkerboard(Toy2D):
    """Uniform on the 8 black squares of the 4 x 4 board of side-2 squares on [-4, 4)^2: square
    (i, j), covering [2i - 4, 2i - 2) x [2j - 4, 2j - 2), is black when i + j is even. Density 1/32."""

    name = "checkerboard"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        i = torch.randint(4, (n,), generator=generator)
        j = 2 * torch.randint(2, (n,), generator=generator) + i % 2
        corner = (torch.stack([i, j], 1) * 2 - 4).float()
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        # Rounding to float32 could carry a point just below a square's upper edge onto it (a white square).
        return (corner + 2 * u).float().clamp(corner, torch.nextafter(corner + 2, corner))

    def log_prob(self, x: Tensor) -> Tensor:
        _check_points(x)
        ij = torch.floor((x + 4) / 2)
        black = ((ij >= 0) & (ij <= 3)).all(1) & (ij.sum(1) % 2 == 0)
        return torch.where(black, -math.log(32.0), -math.inf).to(x.dtype)

    def entropy(self, n: int = 20_000, seed: int = 0) -> float:
        """Exactly log 32 nats (uniform on an area of 32)."""
        return math.log(32.0)


class NoisyCurves(Toy2D):
    """Equal-weight mixture over curves c_k(u), u ~ U[0, 1), plus isotropic N(0, std^2 I) noise.

    log p(x) = log (1/K) sum_k int_0^1 N(x; c_k(u), std^2 I) du, by composite 8-point Gauss-Legendre
    quadrature on `n_quad` nodes per curve, i.e. a weighted mixture of K * n_quad Gaussians, normalised
    exactly. The quadrature runs in v with u = v^warp_power: a power of 2 smooths out a sqrt(u)
    parametrisation (the spirals'). With the default 1,024 nodes per curve, every layout here is within
    1e-9 nats of a 4x finer rule on and near its data: exact for all purposes.
    """

    def __init__(self, name: str, curves: Sequence[Curve], std: float, n_quad: int = 1024, warp_power: int = 1):
        self.name, self.curves, self.std, self.n_quad, self.warp_power = name, tuple(curves), std, n_quad, warp_power
        t, w = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(8))
        panels = n_quad // 8
        v = ((torch.arange(panels, dtype=torch.float64)[:, None] + (t + 1) / 2) / panels).flatten()
        w = (w / 2 / panels).repeat(panels) * warp_power * v ** (warp_power - 1)
        self.nodes = torch.cat([c(v**warp_power) for c in self.curves])
        self.log_weights = (w.log() - math.log(len(self.curves))).repeat(len(self.curves))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.randint(len(self.curves), (n,), generator=generator)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        on_curve = torch.stack([c(u) for c in self.curves])  # (K, n, 2)
        return (on_curve[k, torch.arange(n)] + self.std * eps).float()

    def log_prob(self, x: Tensor) -> Tensor:
        return _mixture_log_prob(x, self.nodes, self.std, self.log_weights)


class Pinwheel(Toy2D):
    """Johnson et al. (2016) at FFJORD's scale: arm k of 5 is f ~ N((1, 0), diag(0.3^2, 0.1^2))
    rotated by -(2 pi k / 5 + 0.25 exp(f_0)), then scaled by 2.

    In polar coordinates the map keeps r = |f| and sends the angle phi to psi = phi - a(phi) with
    a = 2 pi k / 5 + rate exp(r cos phi), so p(x) = sum over arms and roots phi of psi(phi) = angle(x)
    (mod 2 pi) of p_f(f) / (|psi'(phi)| * scale^2), psi'(phi) = 1 + rate exp(r cos phi) r sin phi.
    psi folds (psi' < 0 somewhere) out in the tails; the fold angles are found first, so that psi is
    monotone between them and the `n_grid` grid angles, and the crossings of angle(x) + 2 pi m in each
    grid cell can be counted and found by bisection, then polished by Newton steps. The last step runs
    with autograd on and so carries the implicit root's gradient: log_prob is differentiable in x.
    Exact to float precision for |x| < 11 (log p > -120); beyond, cells steeper than `max_roots`
    crossings keep only that many, a finite under-estimate of p there.
    """

    name = "pinwheel"
    arms, radial_std, tangential_std, rate, scale = 5, 0.3, 0.1, 0.25, 2.0

    def __init__(self, n_grid: int = 128, n_bisect: int = 8, n_newton: int = 3, max_roots: int = 4):
        self.n_grid, self.n_bisect, self.n_newton, self.max_roots = n_grid, n_bisect, n_newton, max_roots

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        k = torch.randint(self.arms, (n,), generator=generator)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        f0, f1 = 1.0 + self.radial_std * eps[:, 0], self.tangential_std * eps[:, 1]
        a = 2 * math.pi * k / self.arms + self.rate * torch.exp(f0)
        x = torch.stack([f0 * torch.cos(a) + f1 * torch.sin(a), -f0 * torch.sin(a) + f1 * torch.cos(a)], 1)
        return (self.scale * x).float()

    def _psi(self, phi: Tensor, r: Tensor) -> Tensor:
        """The angle of x (plus theta_k) for the angle phi of f, unwrapped."""
        return phi - self.rate * torch.exp(r * torch.cos(phi))

    def _dpsi(self, phi: Tensor, r: Tensor) -> Tensor:
        return 1 + self.rate * torch.exp(r * torch.cos(phi)) * r * torch.sin(phi)

    def _folds(self, r: Tensor) -> Tensor:
        """(n, 2): the angles where psi' = 0, or twice the minimiser of psi' where psi is monotone."""
        # exp(r cos phi) sin phi peaks at phi = +-acos(c), c = (sqrt(1 + 4 r^2) - 1) / 2r: psi' falls
        # from its maximum at acos(c) to its minimum at 2 pi - acos(c), then rises again.
        a = torch.acos(2 * r / (1 + torch.sqrt(1 + 4 * r**2)))
        lowest = 2 * math.pi - a
        folds = lowest[:, None].repeat(1, 2)
        f = (self._dpsi(lowest, r) < 0).nonzero().squeeze(1)  # only far out in the tails
        rf, af, lf = r[f].repeat(2), a[f], lowest[f]
        falling = torch.arange(2 * len(f)) < len(f)  # both folds at once: psi' falls on [a, lowest], rises after
        both = _bisect(lambda phi: (self._dpsi(phi, rf) < 0) == falling, torch.cat([af, lf]), torch.cat([lf, lf + 2 * af]), 30)
        folds[f] = both.view(2, -1).T % (2 * math.pi)
        return folds

    def log_prob(self, x: Tensor, chunk: int = 4096) -> Tensor:
        _check_points(x)
        # float64 inside: psi is steep far out, and angles must resolve its roots.
        return torch.cat([self._log_prob(xb) for xb in x.double().split(chunk)]).to(x.dtype) if len(x) else x.new_zeros(0)

    def _log_prob(self, x: Tensor) -> Tensor:
        y = x / self.scale
        r, psi = y.norm(dim=1), torch.atan2(y[:, 1], y[:, 0])
        theta = 2 * math.pi * torch.arange(self.arms, dtype=x.dtype) / self.arms
        target = psi[:, None] + theta  # (n, arms): psi(phi) must equal angle(x) + theta_k mod 2 pi
        with torch.no_grad():
            grid = torch.linspace(0, 2 * math.pi, self.n_grid + 1, dtype=x.dtype).expand(len(x), -1)
            nodes = torch.cat([grid, self._folds(r)], 1).sort(1).values  # (n, n_grid + 3)
            psi_nodes = self._psi(nodes, r[:, None])
            # psi is monotone in each cell between nodes: it crosses target + 2 pi m once for every m
            # between the 2 pi windows that the cell's two ends fall in.
            window = torch.floor((psi_nodes[:, None, :] - target[..., None]) / (2 * math.pi))  # (n, arms, n_grid + 3)
            count = (window[..., 1:] - window[..., :-1]).abs().clamp(max=self.max_roots).long()
            i, k, j = count.nonzero(as_tuple=True)
            reps = count[i, k, j]
            i, k, j = (t.repeat_interleave(reps) for t in (i, k, j))
            first = torch.cumsum(reps, 0) - reps  # index of each cell's first crossing
            turns = torch.minimum(window[i, k, j], window[i, k, j + 1]) + 1 + torch.arange(len(i)) - first.repeat_interleave(reps)
            ri, ti = r[i], target[i, k] + 2 * math.pi * turns
            lo, hi = nodes[i, j], nodes[i, j + 1]
            rising = psi_nodes[i, j + 1] > psi_nodes[i, j]
            phi = _bisect(lambda phi: (self._psi(phi, ri) >= ti) == rising, lo, hi, self.n_bisect)
            for _ in range(self.n_newton):
                phi = (phi - (self._psi(phi, ri) - ti) / self._dpsi(phi, ri)).clamp(lo, hi)
        ri, ti = r[i], target[i, k] + 2 * math.pi * turns
        # Newton step with autograd on: the value stays (the residual is ~0), the gradient becomes the implicit root's.
        phi = phi - (self._psi(phi, ri) - ti) / self._dpsi(phi, ri)
        d0, d1 = ri * torch.cos(phi) - 1.0, ri * torch.sin(phi)  # f - (1, 0)
        log_f = -0.5 * ((d0 / self.radial_std) ** 2 + (d1 / self.tangential_std) ** 2)
        terms = log_f - math.log(2 * math.pi * self.radial_std * self.tangential_std) - self._dpsi(phi, ri).abs().log()
        # Log-sum-exp over each point's roots (psi gains 2 pi around the circle: every arm has one at least).
        top = torch.full((len(x),), -math.inf, dtype=x.dtype).scatter_reduce(0, i, terms.detach(), reduce="amax")
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        total = torch.zeros(len(x), dtype=x.dtype).index_add(0, i, torch.exp(terms - top[i]))
        return total.log() + top - math.log(self.arms) - 2 * math.log(self.scale)


def _bisect(left_of: Callable[[Tensor], Tensor], lo: Tensor, hi: Tensor, steps: int) -> Tensor:
    """Bisection on [lo, hi] elementwise; left_of(mid) says whether the point sought lies below mid."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        left = left_of(mid)
        lo, hi = torch.where(left, lo, mid), torch.where(left, mid, hi)
    return (lo + hi) / 2


def _ring(n: int, radius: float) -> Tensor:
    angle = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], 1)


def _moon_outer(u: Tensor) -> Tensor:
    t = math.pi * u
    return torch.stack([2 * torch.cos(t) - 1, 2 * torch.sin(t) - 0.2], 1)


def _moon_inner(u: Tensor) -> Tensor:
    t = math.pi * u
    return torch.stack([1 - 2 * torch.cos(t), 0.8 - 2 * torch.sin(t)], 1)


def _circle(radius: float) -> Curve:
    def curve(u: Tensor) -> Tensor:
        return radius * torch.stack([torch.cos(2 * math.pi * u), torch.sin(2 * math.pi * u)], 1)

    return curve


def _swissroll(u: Tensor) -> Tensor:
    t = 1.5 * math.pi * (1 + 2 * u)
    return torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 5


def _spiral(sign: float) -> Curve:
    def curve(u: Tensor) -> Tensor:
        n = torch.sqrt(u) * 3 * math.pi  # 540 degrees, denser towards the centre as in FFJORD
        return sign * torch.stack([-n * torch.cos(n), n * torch.sin(n)], 1) / 3

    return curve


_FACTORIES: dict[str, Callable[[], Toy2D]] = {
    # sklearn make_moons(noise=0.1), then x * 2 + (-1, -0.2): std 0.2 in these coordinates.
    "moons": lambda: NoisyCurves("moons", [_moon_outer, _moon_inner], std=0.2),
    # sklearn make_circles(factor=0.5, noise=0.08), then x * 3: radii 3 and 1.5, std 0.24.
    "circles": lambda: NoisyCurves("circles", [_circle(3.0), _circle(1.5)], std=0.24),
    "8gaussians": lambda: GaussianMixture2D("8gaussians", _ring(8, 2.0), std=0.02),
    "25gaussians": lambda: GaussianMixture2D(
        "25gaussians", torch.cartesian_prod(*[torch.arange(-4.0, 5.0, 2.0, dtype=torch.float64)] * 2), std=0.05
    ),
    "checkerboard": Checkerboard,
    # sklearn make_swiss_roll(noise=1.0), coordinates (x, z) / 5: t in [1.5 pi, 4.5 pi), std 0.2.
    "swissroll": lambda: NoisyCurves("swissroll", [_swissroll], std=0.2),
    "pinwheel": Pinwheel,
    # FFJORD's two spirals (radius up to pi) with isotropic noise std 0.1 and without its U[0, 0.5/3) jitter.
    "2spirals": lambda: NoisyCurves("2spirals", [_spiral(1.0), _spiral(-1.0)], std=0.1, warp_power=2),
}


@functools.cache
def toy_distribution(name: str) -> Toy2D:
    """The toy distribution called `name` (one of TOY_NAMES).

    Example: `d = toy_distribution("moons"); x = d.sample(1000, torch.Generator().manual_seed(0)); d.log_prob(x)`.
    """
    if name not in _FACTORIES:
        raise unknown("toy distribution", name, TOY_NAMES)
    return _FACTORIES[name]()


def known_density(name: str) -> Toy2D | None:
    """The true distribution of the dataset `name` when it is one of the toys with a known density, else None."""
    return toy_distribution(name) if name in _FACTORIES else None


def split_seed(seed: int, split: str) -> int:
    """A distinct seed for each (seed, split): train and test draws never share a stream."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    return 2 * seed + (split == "test")


def _builder(name: str) -> Callable[[DataConfig, str], ArrayDataset]:
    def build(cfg: DataConfig, split: str) -> ArrayDataset:
        """cfg.n_train (default 50,000) or cfg.n_test (default 10,000) points drawn with a seed from (cfg.seed, split)."""
        n = (cfg.n_train or 50_000) if split == "train" else (cfg.n_test or 10_000)
        g = torch.Generator().manual_seed(split_seed(cfg.seed, split))
        return ArrayDataset(toy_distribution(name).sample(n, g), None, DataSpec(shape=(2,), encoding="continuous"), name)

    return build


for _name in TOY_NAMES:
    register_dataset(_name)(_builder(_name))
