"""Noise schedules: discrete-time beta_t schedules (linear: Ho et al. 2020; cosine: Nichol & Dhariwal 2021; sigmoid: Jabri et
al. 2022) with alpha_bar_t = prod_{s<=t} (1 - beta_s), their sigma view sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) (Karras
et al. 2022, "EDM"), and EDM's rho-schedule of sampling noise levels."""

from __future__ import annotations

import math
from typing import Literal

import torch

Schedule = Literal["linear", "cosine", "sigmoid"]


def betas_for(schedule: Schedule, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """beta_0..beta_{T-1} (float64) of q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I).

    linear: beta_start..beta_end evenly (DDPM, T = 1000). cosine: alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), s = 0.008,
    betas clipped at 0.999. sigmoid: alpha_bar(t) from a sigmoid over [-3, 3] with temperature 1 (Jabri et al. 2022, clipped).

    >>> betas_for("linear", 1000)[[0, -1]].tolist()
    [0.0001, 0.02]
    """
    if schedule == "linear":
        # Scaled so that T != 1000 keeps the same total noise (Nichol & Dhariwal 2021, appendix).
        scale = 1000 / T
        return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64).clamp(max=0.999)
    t = torch.linspace(0, 1, T + 1, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    elif schedule == "sigmoid":
        start, end, tau = -3.0, 3.0, 1.0
        v0, v1 = torch.sigmoid(torch.tensor(start / tau)), torch.sigmoid(torch.tensor(end / tau))
        f = (-torch.sigmoid((t * (end - start) + start) / tau) + v1) / (v1 - v0)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; expected linear, cosine or sigmoid")
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(1e-8, 0.999)


def alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s): q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)."""
    return torch.cumprod(1 - betas, dim=0)


def vp_sigmas(abar: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t): x_t / sqrt(alpha_bar_t) = x_0 + sigma_t eps."""
    return ((1 - abar) / abar).sqrt()


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """EDM eq. 5: n noise levels from sigma_max down to sigma_min, evenly spaced in sigma^(1/rho), then 0 appended: (n + 1,).

    >>> karras_sigmas(2, 0.002, 80.0).tolist()
    [80.0, 0.002, 0.0]
    """
    if n == 1:
        return torch.tensor([sigma_max, 0.0], dtype=torch.float64)
    i = torch.arange(n, dtype=torch.float64) / (n - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    s = (hi + i * (lo - hi)) ** rho
    return torch.cat([s, s.new_zeros(1)])
