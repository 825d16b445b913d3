"""Stateless diffusion samplers over a denoiser D(x; sigma) in EDM's sigma parametrisation (Karras et al. 2022):
x_sigma = x_0 + sigma * eps, so one sampler runs on any diffusion model (a VP model maps through x_sigma = x_t / sqrt(alpha_bar_t)).

- ddpm: ancestral sampling, x_s ~ q(x_s | x_t, x_0 = D(x_t)) (Ho et al. 2020, Algorithm 2), on the model's own discrete steps;
- ddim: DDIM (Song et al. 2021) with stochasticity eta on evenly spaced timesteps (eta = 1 is DDPM's posterior on that grid);
- euler: the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma, Euler steps on EDM's rho-schedule;
- heun: EDM's Algorithm 1 (2nd order; Euler on the last step), with optional churn (Algorithm 2);
- dpmpp_2m: DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep 2nd order in lambda = -log sigma, data prediction.

Every sampler is `fn(denoiser, x, sigmas, *, generator=None, progress=False, **options) -> x_0` with `x` at sigmas[0] and
`sigmas` descending to 0; `run(name, denoiser, noise, steps)` builds the grid from a number of function evaluations (NFE).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch

from genlab.errors import ConfigError
from genlab.noise import randn
from genlab.registry import register_sampler, sampler


class Denoiser(Protocol):
    """What a sampler needs from a model: D(x; sigma) ~ E[x_0 | x_sigma = x], a grid of noise levels and the prior's std."""

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor: ...

    def sigmas(self, kind: str, n: int) -> torch.Tensor:
        """(n + 1,) float64 noise levels, descending, the last 0. kind: "discrete" (the model's own steps), "uniform"
        (evenly spaced timesteps), "karras" (EDM's rho-schedule)."""
        ...

    def prior_std(self, sigma: float) -> float:
        """Standard deviation of x_sigma under the model's prior at the top level (VP: sqrt(1 + sigma^2); EDM: sigma)."""
        ...


def _bar(sigmas: torch.Tensor, progress: bool, name: str):
    from tqdm.auto import tqdm

    return tqdm(range(len(sigmas) - 1), disable=not progress, desc=name, leave=False, unit="step")


def _sampler(name: str, grid: str, evals_per_step: int = 1, stochastic: bool = False, options: tuple[str, ...] = ()):
    """Register a sampler with the grid it walks, function evaluations per step and its extra options."""

    def deco(fn: Callable) -> Callable:
        fn.grid, fn.evals_per_step, fn.stochastic, fn.options = grid, evals_per_step, stochastic, options
        return register_sampler(name)(fn)

    return deco


@_sampler("ddpm", grid="discrete", stochastic=True)
@torch.no_grad()
def ddpm(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, generator=None, progress=False) -> torch.Tensor:
    """Ancestral sampling: x_s ~ q(x_s | x_t, x_0 = D(x_t; sigma_t)); in sigma form (x_sigma = x_0 + sigma eps)
    mean = x0 + (sigma_s^2 / sigma_t^2)(x_t - x0), var = sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2,
    which is DDPM's posterior N(mu_tilde, beta_tilde) scaled by 1 / sqrt(alpha_bar_s)."""
    return ddim(denoiser, x, sigmas, eta=1.0, generator=generator, progress=progress, _name="ddpm")


@_sampler("ddim", grid="uniform", stochastic=True, options=("eta",))
@torch.no_grad()
def ddim(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, eta: float = 0.0, generator=None, progress=False, _name: str = "ddim"
) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) in sigma form: eps = (x - x0) / sigma_t, c = eta * sqrt(sigma_s^2 (sigma_t^2 - sigma_s^2)
    / sigma_t^2), x_s = x0 + sqrt(sigma_s^2 - c^2) eps + c z. eta = 0 is deterministic (= Euler on the same grid)."""
    if eta < 0:
        raise ConfigError(f"eta: expected a value >= 0, got {eta}")
    for i in _bar(sigmas, progress, _name):
        s_t, s_s = float(sigmas[i]), float(sigmas[i + 1])
        x0 = denoiser(x, s_t)
        if s_s == 0:
            x = x0
            continue
        eps = (x - x0) / s_t
        c = eta * math.sqrt(max(0.0, s_s**2 * (s_t**2 - s_s**2) / s_t**2))
        x = x0 + math.sqrt(max(0.0, s_s**2 - c**2)) * eps
        if c > 0:
            x = x + c * randn(x.shape, x, generator)
    return x


@_sampler("euler", grid="karras")
@torch.no_grad()
def euler(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, generator=None, progress=False) -> torch.Tensor:
    """Euler steps of the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (EDM eq. 4 with sigma(t) = t)."""
    for i in _bar(sigmas, progress, "euler"):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - denoiser(x, s)) / s  # Euler step.
        x = x + (s_next - s) * d
    return x


@_sampler("heun", grid="karras", evals_per_step=2, options=("s_churn", "s_noise"))
@torch.no_grad()
def heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    s_churn: float = 0.0,
    s_noise: float = 1.0,
    generator=None,
    progress=False,
) -> torch.Tensor:
    """EDM Algorithm 2: (optional churn: raise sigma by gamma = min(s_churn / N, sqrt 2 - 1) with fresh noise), an Euler step,
    then the 2nd-order correction with the slope at the end point; the last step (to sigma = 0) is Euler. 2N - 1 evaluations."""
    n = len(sigmas) - 1
    for i in _bar(sigmas, progress, "heun"):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        if s_churn > 0:
            gamma = min(s_churn / n, math.sqrt(2) - 1)
            s_hat = s * (1 + gamma)
            x = x + math.sqrt(s_hat**2 - s**2) * s_noise * randn(x.shape, x, generator)
            s = s_hat
        d = (x - denoiser(x, s)) / s
        x_next = x + (s_next - s) * d  # Euler step.
        if s_next > 0:
            d2 = (x_next - denoiser(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d2)  # 2nd order correction.
        x = x_next
    return x


@_sampler("dpmpp_2m", grid="karras")
@torch.no_grad()
def dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, *, generator=None, progress=False) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) with alpha = 1: h_i = lambda_{i+1} - lambda_i = log(sigma_i / sigma_{i+1}),
    D' = (1 + 1/(2 r)) D_i - 1/(2 r) D_{i-1} with r = h_{i-1} / h_i (D' = D_i on the first step),
    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - expm1(-h_i) D'; the step to sigma = 0 returns D_i."""
    old, h_old = None, None
    for i in _bar(sigmas, progress, "dpmpp_2m"):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        d = denoiser(x, s)
        if s_next == 0:
            x = d
            continue
        h = math.log(s / s_next)
        if old is None:
            dm = d
        else:
            r = h_old / h
            dm = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * old
        x = (s_next / s) * x - math.expm1(-h) * dm
        old, h_old = d, h
    return x


def steps_for(name: str, nfe: int) -> int:
    """Grid intervals that fit in `nfe` function evaluations (Heun: 2N - 1 evaluations for N intervals)."""
    fn = sampler(name)
    return max(1, (nfe + 1) // 2) if fn.evals_per_step == 2 else max(1, nfe)


def run(
    name: str,
    denoiser: Denoiser,
    noise: torch.Tensor,
    steps: int,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    **options,
) -> torch.Tensor:
    """Sample with sampler `name` in `steps` function evaluations from standard normal `noise`, scaled to the prior at the top.

    >>> x0 = run("heun", model.denoiser(), torch.randn(16, 1, 28, 28), steps=35)  # doctest: +SKIP
    """
    fn = sampler(name)
    if steps < 1:
        raise ConfigError(f"steps: expected a positive number of function evaluations, got {steps}")
    unknown = [k for k in options if k not in fn.options]
    if unknown:
        raise ConfigError(f"sampler {name!r} has no option {unknown[0]!r}; it takes {', '.join(fn.options) or 'none'}")
    sigmas = denoiser.sigmas(fn.grid, steps_for(name, steps))
    x = noise * denoiser.prior_std(float(sigmas[0]))
    return fn(denoiser, x, sigmas, generator=generator, progress=progress, **options)
