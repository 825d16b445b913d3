"""Likelihood heads in nats, shared by the families: Bernoulli, diagonal Gaussian, discretised logistic and its
mixture (Salimans et al. 2017, PixelCNN++), the standard normal and the Gaussian KL to N(0, I) (Kingma & Welling 2014).

The functions are elementwise (a log-density per coordinate, summed by the caller); the `*Head` modules turn a
network's output into the parameters of one of them and give log p(x) per example, samples and the mean.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.noise import rand, randn

LOG_2PI = math.log(2 * math.pi)
# Learned log-scales are clamped to [LOG_SCALE_MIN, LOG_SCALE_MAX]: e^-7 ~ 1e-3 is below a quarter of an 8-bit
# bin on [-1, 1] (1/128), so dequantised data never needs less, and the bound stops densities running to infinity.
LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 5.0

Params = tuple[torch.Tensor, ...]


def sum_except_batch(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the log-density of an example is the sum of its coordinates' log-densities."""
    return t.flatten(1).sum(1)


def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    """log N(x; 0, 1) = -(x^2 + log 2 pi) / 2, elementwise."""
    return -0.5 * (x * x + LOG_2PI)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, sigma^2) = -((x - mu) / sigma)^2 / 2 - log sigma - log(2 pi) / 2, elementwise, log_scale = log sigma."""
    return standard_normal_log_prob((x - mean) * torch.exp(-log_scale)) - log_scale


def gaussian_kl_standard(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1 - log sigma^2) / 2, elementwise (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar)


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log p(x) for x in {-1, 1} with p(x = 1) = sigmoid(l): log sigmoid(x l) = -softplus(-x l), elementwise."""
    return -F.softplus(-x * logits)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - e^-d) for d > 0, accurate at both ends (Maechler 2012); each branch sees only its own range,
    so neither puts an infinity into the gradient."""
    ln2 = math.log(2)
    return torch.where(d < ln2, torch.log(-torch.expm1(-d.clamp(max=ln2))), torch.log1p(-torch.exp(-d.clamp(min=ln2))))


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """log P(x) of a logistic(mu, s) discretised to `bins` levels on [-1, 1] (Salimans et al. 2017, eq. 2), elementwise.

    With bin half-width delta = 1 / (bins - 1), a = (x + delta - mu) / s and b = (x - delta - mu) / s:
        P(x) = sigmoid(a) - sigmoid(b)                   inside,
        P(-1) = sigmoid(a),  P(1) = 1 - sigmoid(b)       the edge bins take the tails.
    Inside, sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b - a)), so
        log P(x) = log sigmoid(a) + log sigmoid(-b) + log(1 - e^-(a - b))
    has no cancellation anywhere: PixelCNN++'s mid-bin density fallback for bins where the difference
    of CDFs underflows is not needed. `x` must lie on the bin centres k / (bins - 1) * 2 - 1.
    """
    delta = 1.0 / (bins - 1)
    inv_s = torch.exp(-log_scale)
    a = (x - mean + delta) * inv_s
    b = (x - mean - delta) * inv_s
    log_cdf_a = F.logsigmoid(a)  # log P(X < x + delta): the bottom edge bin
    log_sf_b = F.logsigmoid(-b)  # log P(X > x - delta): the top edge bin
    inside = log_cdf_a + log_sf_b + _log1mexp(2 * delta * inv_s)
    return torch.where(x < -1 + delta, log_cdf_a, torch.where(x > 1 - delta, log_sf_b, inside))


def discretized_logistic_mixture_log_prob(
    x: torch.Tensor, logits: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor, bins: int = 256
) -> torch.Tensor:
    """log P(x) = log sum_k pi_k P(x | mu_k, s_k) for a mixture of K discretised logistics, elementwise over x.

    `x` (B, ...); `logits`, `means`, `log_scales` (B, K, ...) with pi = softmax(logits) over K. Each
    coordinate has its own mixture (channels independent given the parameters, unlike PixelCNN++'s RGB coupling).
    """
    log_pk = discretized_logistic_log_prob(x.unsqueeze(1), means, log_scales, bins)  # (B, K, ...)
    return torch.logsumexp(F.log_softmax(logits, dim=1) + log_pk, dim=1)


def _quantize(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Round values in [-1, 1] to the nearest of `bins` bin centres."""
    half = (bins - 1) / 2
    return torch.round((x.clamp(-1, 1) + 1) * half) / half - 1


def logistic_sample(mean: torch.Tensor, log_scale: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """mu + s (log u - log(1 - u)), u ~ U(0, 1): a logistic sample by inverting its CDF."""
    u = rand(mean.shape, mean, generator).clamp(1e-5, 1 - 1e-5)
    return mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))


def _pick_component(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One-hot (B, K, ...) of k ~ softmax(logits) over dim 1, by the Gumbel-max trick."""
    u = rand(logits.shape, logits, generator).clamp(1e-10, 1 - 1e-10)
    k = (logits - torch.log(-torch.log(u))).argmax(dim=1, keepdim=True)
    return torch.zeros_like(logits).scatter_(1, k, 1.0)


class LikelihoodHead(nn.Module):
    """p(x | h): reads the parameters of a distribution over data of shape `shape` from a network output `h`.

    A network feeding the head outputs `params_per_dim` values per data coordinate: (B, P * C, H, W) for
    images, (B, P * D) for vectors, parameter-major (channel p * C + c holds parameter p of channel c).
    `log_prob` is per example, in nats; `mean` and `sample` are in data space.
    """

    params_per_dim: int = 1

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def params(self, h: torch.Tensor) -> Params:
        raise NotImplementedError

    def log_prob_elementwise(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """log p(x | params) per example, (B,), in nats."""
        return sum_except_batch(self.log_prob_elementwise(x, params))

    def mean(self, params: Params) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class BernoulliHead(LikelihoodHead):
    """Independent Bernoulli pixels on {-1, 1}; params = (logits,), p(x = 1) = sigmoid(logits)."""

    def params(self, h: torch.Tensor) -> Params:
        return (h.view(h.shape[0], *self.shape),)

    def log_prob_elementwise(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return bernoulli_log_prob(x, params[0])

    def mean(self, params: Params) -> torch.Tensor:
        """E[x] = 2 sigmoid(l) - 1: the pixel probabilities mapped to [-1, 1]."""
        return 2 * torch.sigmoid(params[0]) - 1

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        (logits,) = params
        return torch.where(rand(logits.shape, logits, generator) < torch.sigmoid(logits), 1.0, -1.0).to(logits.dtype)


class _ScaledHead(LikelihoodHead):
    """A location-scale head whose log-scale is either read from the network per coordinate ("pixel") or is
    one learned parameter per channel ("channel"; a vector's coordinates are its channels); clamped to
    [LOG_SCALE_MIN, LOG_SCALE_MAX]."""

    def __init__(self, shape: tuple[int, ...], scale: Literal["pixel", "channel"] = "pixel"):
        super().__init__(shape)
        if scale not in ("pixel", "channel"):
            raise ValueError(f"scale must be 'pixel' or 'channel', got {scale!r}")
        self.scale = scale
        self.params_per_dim = 2 if scale == "pixel" else 1
        if scale == "channel":
            self.log_scale = nn.Parameter(torch.zeros(self.shape[0], *[1] * (len(self.shape) - 1)))  # (C, 1, 1) or (D,)

    def params(self, h: torch.Tensor) -> Params:
        if self.scale == "pixel":
            mean, log_scale = h.view(h.shape[0], 2, *self.shape).unbind(1)
        else:
            mean = h.view(h.shape[0], *self.shape)
            log_scale = self.log_scale.expand_as(mean)
        return mean, log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)


class GaussianHead(_ScaledHead):
    """Diagonal Gaussian N(x; mu, sigma^2) for continuous (or dequantised) data; params = (mu, log sigma)."""

    def log_prob_elementwise(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return gaussian_log_prob(x, *params)

    def mean(self, params: Params) -> torch.Tensor:
        return params[0]

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        mean, log_scale = params
        return mean + torch.exp(log_scale) * randn(mean.shape, mean, generator)


class DiscretizedLogisticHead(_ScaledHead):
    """Discretised logistic over `bins` levels on [-1, 1] (Salimans et al. 2017); params = (mu, log s)."""

    def __init__(self, shape: tuple[int, ...], scale: Literal["pixel", "channel"] = "pixel", bins: int = 256):
        super().__init__(shape, scale)
        self.bins = bins

    def log_prob_elementwise(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return discretized_logistic_log_prob(x, *params, bins=self.bins)

    def mean(self, params: Params) -> torch.Tensor:
        """mu clamped to [-1, 1]: the logistic's location, a noise-free summary (the discretised mean differs near the edges)."""
        return params[0].clamp(-1, 1)

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        return _quantize(logistic_sample(*params, generator=generator), self.bins)


class DiscretizedLogisticMixtureHead(LikelihoodHead):
    """A mixture of K discretised logistics per coordinate (Salimans et al. 2017);
    params = (logits, means, log_scales), each (B, K, ...)."""

    def __init__(self, shape: tuple[int, ...], n_mix: int = 5, bins: int = 256):
        super().__init__(shape)
        self.n_mix, self.bins = n_mix, bins
        self.params_per_dim = 3 * n_mix

    def params(self, h: torch.Tensor) -> Params:
        p = h.view(h.shape[0], 3, self.n_mix, *self.shape)  # (B, 3, K, ...)
        logits, means, log_scales = p.unbind(1)
        return logits, means, log_scales.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)

    def log_prob_elementwise(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return discretized_logistic_mixture_log_prob(x, *params, bins=self.bins)

    def mean(self, params: Params) -> torch.Tensor:
        """sum_k pi_k clamp(mu_k, -1, 1): the mixture's mean with each component's tails folded into the edge bins."""
        logits, means, _ = params
        return (torch.softmax(logits, dim=1) * means.clamp(-1, 1)).sum(1)

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        logits, means, log_scales = params
        onehot = _pick_component(logits, generator)  # (B, K, ...)
        mean, log_scale = (onehot * means).sum(1), (onehot * log_scales).sum(1)
        return _quantize(logistic_sample(mean, log_scale, generator), self.bins)
