"""The variational bound of a Gaussian diffusion on a grid of noise levels (Sohl-Dickstein et al. 2015; Ho et al. 2020, eq. 5;
Kingma et al. 2021 for the SNR form), for any denoiser D(x; sigma), with a discretised Gaussian decoder for 8-bit data."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

LOG_2PI = math.log(2 * math.pi)


def _log1mexp(a: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(a)) for a <= 0, stable (Maechler 2012)."""
    a = a.clamp(max=-1e-12)
    return torch.where(a > -math.log(2), torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(a)))


def discretized_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor | float, bins: int = 256) -> torch.Tensor:
    """log P(x) elementwise, where x in [-1, 1] holds `bins` evenly spaced levels and P is N(mean, scale^2) integrated over
    each level's bin of half-width 1 / (bins - 1); the end bins reach to -inf and +inf (Ho et al. 2020, eq. 13).

    >>> p = discretized_gaussian_log_prob(torch.tensor([-1.0, 1.0]), torch.zeros(2), 1.0, bins=2).exp()
    >>> p.tolist()
    [0.5, 0.5]
    """
    half = 1.0 / (bins - 1)
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
    lo = torch.where(x <= -1 + 1e-6, torch.full_like(x, -math.inf), (x - half - mean) / scale)
    hi = torch.where(x >= 1 - 1e-6, torch.full_like(x, math.inf), (x + half - mean) / scale)
    # P = Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi); take the side whose tail is not rounded to 1.
    flip = lo > 0
    a, b = torch.where(flip, -hi, lo), torch.where(flip, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    return log_b + _log1mexp(torch.special.log_ndtr(a) - log_b)


def gaussian_kl(mean_q: torch.Tensor, var_q: torch.Tensor | float, var_p: torch.Tensor | float) -> torch.Tensor:
    """KL(N(mean_q, var_q) || N(0, var_p)) elementwise."""
    var_q, var_p = torch.as_tensor(var_q), torch.as_tensor(var_p)
    return 0.5 * ((var_q + mean_q**2) / var_p - 1 + torch.log(var_p / var_q))


def variational_bound(
    denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    sigmas: torch.Tensor,
    prior_std: float,
    *,
    bins: int | None = 256,
    terms: int = 0,
    generator: torch.Generator | None = None,
    chunk: int = 2048,
) -> dict[str, torch.Tensor]:
    """-log p(x0) <= L_prior + sum_i L_i + L_decoder, per example (nats), on ascending noise levels sigmas[0] < ... < sigmas[N-1].

    With x_sigma = x0 + sigma eps and the reverse step p(x_s | x_t) = q(x_s | x_t, x0 = D(x_t; t)) (same variance as the
    posterior), each transition term is a KL between Gaussians of equal variance, which reduces to
        L_i = (SNR(sigma_{i-1}) - SNR(sigma_i)) / 2 * ||x0 - D(x_i; sigma_i)||^2,   SNR = 1 / sigma^2, x_i = x0 + sigma_i eps;
    L_prior = KL(q(x_N | x0) || N(0, prior_std^2 I)); L_decoder = -log p(x0 | x_0) with p = N(D(x_0; sigma_0), sigma_0^2)
    discretised to `bins` levels (or a density when bins is None). For a VP model on its own discrete steps this is DDPM's
    L_T + sum L_{t-1} + L_0. `terms` > 0 estimates the sum over transitions without bias from that many uniformly drawn
    steps per example (all N - 1 when 0). `denoise(x, sigma)` takes sigma of shape (B,); it is called on at most
    max(B, chunk) noisy examples at a time.
    """
    B = x0.shape[0]
    sig = sigmas.to(x0.dtype).to(x0.device)
    N = len(sig)
    dims = tuple(range(1, x0.dim()))

    def noisy(s: torch.Tensor) -> torch.Tensor:  # s (M,) -> x0 + s eps for x0 repeated
        reps = s.shape[0] // B
        eps = torch.randn((s.shape[0], *x0.shape[1:]), generator=generator, dtype=x0.dtype).to(x0.device)
        return x0.repeat(reps, *([1] * (x0.dim() - 1))) + s.view(-1, *([1] * (x0.dim() - 1))) * eps

    prior = gaussian_kl(x0, sig[-1] ** 2, prior_std**2).sum(dims)
    # Transitions i = 1..N-1, chunked over (example, step) pairs.
    if terms and terms < N - 1:
        idx = torch.randint(1, N, (terms, B), generator=generator).to(x0.device)  # (k, B)
        weight = (N - 1) / terms
    else:
        idx = torch.arange(1, N, device=x0.device)[:, None].expand(N - 1, B)
        weight = 1.0
    transitions = torch.zeros(B, dtype=x0.dtype, device=x0.device)
    per_call = max(1, chunk // B)  # steps per network call
    for start in range(0, idx.shape[0], per_call):
        ii = idx[start : start + per_call].reshape(-1)  # (c * B,) step-major: rows repeat x0 in order
        s, s_prev = sig[ii], sig[ii - 1]
        x = noisy(s)
        err = (x0.repeat(ii.shape[0] // B, *([1] * (x0.dim() - 1))) - denoise(x, s)).pow(2).sum(dims)
        transitions += (0.5 * (1 / s_prev**2 - 1 / s**2) * err).view(-1, B).sum(0)
    transitions = weight * transitions
    s0 = sig[:1].expand(B)
    mean = denoise(noisy(s0), s0)
    if bins is None:
        log_p = -0.5 * ((x0 - mean) / sig[0]) ** 2 - torch.log(sig[0]) - 0.5 * LOG_2PI
    else:
        log_p = discretized_gaussian_log_prob(x0, mean, sig[0], bins)
    decoder = -log_p.sum(dims)
    return {"nll_bound": prior + transitions + decoder, "prior": prior, "transitions": transitions, "decoder": decoder}
