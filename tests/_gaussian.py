"""The exact denoiser of Gaussian data, a reference against which samplers and bounds are checked: for x_0 ~ N(mu, Sigma) and
x = x_0 + sigma eps, E[x_0 | x] = mu + Sigma (Sigma + sigma^2 I)^{-1} (x - mu) and x ~ N(mu, Sigma + sigma^2 I)."""

from __future__ import annotations

import math

import torch

from genlab.models.diffusion.schedules import karras_sigmas


class GaussianDenoiser:
    """D(x; sigma) = E[x_0 | x_0 + sigma eps = x] for x_0 ~ N(mu, Sigma) in d dimensions, with the `Denoiser` interface.

    Grids: "karras" (rho = 7), "uniform" and "discrete" (geometric) between sigma_min and sigma_max; the prior is N(0, sigma^2 I).

    Example:
        >>> den = GaussianDenoiser(torch.zeros(2), torch.eye(2))
        >>> den(torch.ones(1, 2), 1.0)
        tensor([[0.5000, 0.5000]], dtype=torch.float64)
    """

    def __init__(self, mu: torch.Tensor, cov: torch.Tensor, sigma_min: float = 0.002, sigma_max: float = 500.0):
        self.mu, self.cov = mu.double(), cov.double()
        self.lam, self.Q = torch.linalg.eigh(self.cov)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def __call__(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        s2 = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1) ** 2  # (B or 1, 1)
        z = (x.double() - self.mu) @ self.Q  # eigenbasis
        return (self.mu + (z * self.lam / (self.lam + s2)) @ self.Q.T).to(x.dtype)

    def sigmas(self, kind: str, n: int) -> torch.Tensor:
        if kind == "karras":
            return karras_sigmas(n, self.sigma_min, self.sigma_max)
        s = (
            torch.logspace(math.log10(self.sigma_max), math.log10(self.sigma_min), n, dtype=torch.float64)
            if n > 1
            else torch.tensor([self.sigma_max])
        )
        return torch.cat([s, torch.zeros(1, dtype=torch.float64)])

    def prior_std(self, sigma: float) -> float:
        return sigma

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; mu, Sigma) per row (nats)."""
        return torch.distributions.MultivariateNormal(self.mu, self.cov).log_prob(x.double())


class GaussianVelocity(torch.nn.Module):
    """The optimal flow-matching velocity of x_0 ~ N(mu, s^2 I) on the path x_t = (1 - t) x_0 + t eps: with a = 1 - t and
    V = a^2 s^2 + t^2 (the variance of x_t), E[x_0 | x_t] = mu + a s^2 (x_t - a mu) / V and E[eps | x_t] = t (x_t - a mu) / V,
    so v = (t - a s^2)(x_t - a mu) / V - mu (curved: independent noise-data pairs cross). A network for
    `FlowMatchingModel.net`: it reads t from c_noise = t_scale t; one parameter in mu's dtype sets the model's dtype."""

    def __init__(self, mu: torch.Tensor, s: float, t_scale: float):
        super().__init__()
        self.mu, self.s, self.t_scale = mu, s, t_scale
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=mu.dtype))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        t = (c_noise / self.t_scale)[:, None]
        a = 1 - t
        return (t - a * self.s**2) * (x - a * self.mu) / (a**2 * self.s**2 + t**2) - self.mu
