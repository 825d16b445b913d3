"""Likelihood heads: exact normalisation of the discretised logistic, agreement with torch.distributions,
numerical stability in float32, and samples that follow the densities."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from genlab.models.distributions import (
    BernoulliHead,
    DiscretizedLogisticHead,
    DiscretizedLogisticMixtureHead,
    GaussianHead,
    bernoulli_log_prob,
    discretized_logistic_log_prob,
    discretized_logistic_mixture_log_prob,
    gaussian_kl_standard,
    gaussian_log_prob,
    standard_normal_log_prob,
)

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # the 256 bin centres on [-1, 1]


@pytest.mark.parametrize("mean", [-1.3, -1.0, -0.2, 0.0, 0.37, 1.0, 2.5])
@pytest.mark.parametrize("log_scale", [-7.0, -4.0, -1.0, 0.5, 3.0])
def test_discretized_logistic_sums_to_one(mean, log_scale):
    m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)
    p = discretized_logistic_log_prob(LEVELS, m, s).exp()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-12, rtol=0)


def test_discretized_logistic_is_the_cdf_difference():
    m, s = torch.tensor(0.1, dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64)
    cdf = lambda v: torch.sigmoid((v - m) / s.exp())
    expected = cdf(LEVELS + 1 / 255) - cdf(LEVELS - 1 / 255)
    expected[0], expected[-1] = cdf(LEVELS[0] + 1 / 255), 1 - cdf(LEVELS[-1] - 1 / 255)
    torch.testing.assert_close(discretized_logistic_log_prob(LEVELS, m, s).exp(), expected)


def test_discretized_logistic_is_stable_in_float32():
    # Far tails, where sigmoid(a) - sigmoid(b) underflows or cancels: the log stays finite and close to float64.
    x = LEVELS[[0, 1, 128, 254, 255]].repeat(3)
    mean = torch.tensor([-1.0] * 5 + [1.0] * 5 + [0.0] * 5, dtype=torch.float64)
    ref = discretized_logistic_log_prob(x, mean, torch.full_like(x, -7.0))
    m32, s32 = mean.float().requires_grad_(), torch.full_like(x, -7.0, dtype=torch.float32, requires_grad=True)
    lp = discretized_logistic_log_prob(x.float(), m32, s32)
    assert torch.isfinite(lp).all() and ref.min() < -1000
    torch.testing.assert_close(lp.double(), ref, rtol=1e-5, atol=1e-3)
    lp.sum().backward()
    assert torch.isfinite(m32.grad).all() and torch.isfinite(s32.grad).all()


def test_discretized_logistic_mixture_sums_to_one():
    g = torch.Generator().manual_seed(0)
    logits, means, log_scales = (torch.randn(1, 4, 1, generator=g, dtype=torch.float64) for _ in range(3))
    lp = discretized_logistic_mixture_log_prob(
        LEVELS.view(256, 1), logits.expand(256, 4, 1), means.expand(256, 4, 1), log_scales.expand(256, 4, 1)
    )
    torch.testing.assert_close(lp.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-12, rtol=0)
    # One component is the plain discretised logistic.
    one = discretized_logistic_mixture_log_prob(
        LEVELS.view(256, 1), logits[:, :1].expand(256, 1, 1), means[:, :1].expand(256, 1, 1), log_scales[:, :1].expand(256, 1, 1)
    )
    torch.testing.assert_close(one.view(256), discretized_logistic_log_prob(LEVELS, means[0, 0, 0], log_scales[0, 0, 0]))


def test_gaussian_normal_and_kl_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    x, mu, log_sigma = (torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(gaussian_log_prob(x, mu, log_sigma), Normal(mu, log_sigma.exp()).log_prob(x))
    torch.testing.assert_close(standard_normal_log_prob(x), Normal(0.0, 1.0).log_prob(x))
    logvar = 2 * log_sigma
    torch.testing.assert_close(gaussian_kl_standard(mu, logvar), kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)))


def test_bernoulli_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(6, 9, generator=g, dtype=torch.float64)
    x = torch.where(torch.rand(6, 9, generator=g) < 0.5, 1.0, -1.0).double()  # {-1, 1}
    torch.testing.assert_close(bernoulli_log_prob(x, logits), Bernoulli(logits=logits).log_prob((x + 1) / 2))
    assert torch.isfinite(bernoulli_log_prob(torch.tensor([1.0, -1.0]), torch.tensor([-200.0, 200.0]))).all()


SHAPE = (2, 3, 3)  # (C, H, W)


def _heads():
    return [
        BernoulliHead(SHAPE),
        GaussianHead(SHAPE, "pixel"),
        GaussianHead(SHAPE, "channel"),
        DiscretizedLogisticHead(SHAPE, "pixel"),
        DiscretizedLogisticHead(SHAPE, "channel"),
        DiscretizedLogisticMixtureHead(SHAPE, n_mix=3),
    ]


@pytest.mark.parametrize("head", _heads(), ids=lambda h: f"{type(h).__name__}-{getattr(h, 'scale', '')}")
def test_heads_read_network_outputs(head):
    h = torch.randn(4, head.params_per_dim * SHAPE[0], *SHAPE[1:])
    params = head.params(h)
    mean = head.mean(params)
    assert mean.shape == (4, *SHAPE)
    x = head.sample(params, torch.Generator().manual_seed(0))
    assert x.shape == (4, *SHAPE)
    assert torch.equal(x, head.sample(params, torch.Generator().manual_seed(0)))
    lp = head.log_prob(x, params)
    assert lp.shape == (4,) and torch.isfinite(lp).all()
    if not isinstance(head, GaussianHead):
        assert x.min() >= -1 and x.max() <= 1 and mean.min() >= -1 and mean.max() <= 1
        # Discrete heads sample on their support: {-1, 1}, or the 256 bin centres.
        on_grid = (
            torch.isin(x, torch.tensor([-1.0, 1.0]))
            if isinstance(head, BernoulliHead)
            else torch.isclose((x + 1) * 127.5, ((x + 1) * 127.5).round())
        )
        assert on_grid.all()


def test_head_vectors_and_learned_scale():
    head = GaussianHead((3,), "channel")
    params = head.params(torch.zeros(5, 3))
    assert params[1].shape == (5, 3)
    with torch.no_grad():
        head.log_scale.fill_(-100.0)  # clamped: no infinite density
    assert head.params(torch.zeros(5, 3))[1].min() == -7.0


def _empirical(samples: torch.Tensor) -> torch.Tensor:
    return torch.bincount(((samples + 1) * 127.5).round().long().flatten(), minlength=256).double() / samples.numel()


def test_logistic_samples_follow_the_probabilities():
    n = 20000
    head = DiscretizedLogisticHead((1,), "pixel")
    mean, log_scale = torch.full((n, 1), 0.9), torch.full((n, 1), math.log(0.05))
    x = head.sample((mean, log_scale), torch.Generator().manual_seed(0))
    p = discretized_logistic_log_prob(
        LEVELS, torch.tensor(0.9, dtype=torch.float64), torch.tensor(math.log(0.05), dtype=torch.float64)
    ).exp()
    assert (_empirical(x) - p).abs().max() < 0.01  # the edge bin at 1 holds ~12%
    assert abs(_empirical(x)[-1] - p[-1]) < 0.01


def test_mixture_samples_follow_the_probabilities():
    n = 20000
    head = DiscretizedLogisticMixtureHead((1,), n_mix=2)
    logits = torch.tensor([math.log(0.3), math.log(0.7)]).view(1, 2, 1).expand(n, 2, 1)
    means = torch.tensor([-0.5, 0.5]).view(1, 2, 1).expand(n, 2, 1)
    log_scales = torch.full((n, 2, 1), math.log(0.02))
    x = head.sample((logits, means, log_scales), torch.Generator().manual_seed(0))
    assert abs((x < 0).double().mean().item() - 0.3) < 0.015
    torch.testing.assert_close(head.mean((logits[:1], means[:1], log_scales[:1])), torch.tensor([[0.2]]))


def test_gaussian_and_bernoulli_samples_have_the_right_moments():
    n = 20000
    g = GaussianHead((1,), "pixel")
    x = g.sample((torch.full((n, 1), 0.3), torch.full((n, 1), math.log(0.5))), torch.Generator().manual_seed(0))
    assert abs(x.mean().item() - 0.3) < 0.02 and abs(x.std().item() - 0.5) < 0.02
    b = BernoulliHead((1,))
    logits = torch.full((n, 1), math.log(0.8 / 0.2))
    x = b.sample((logits,), torch.Generator().manual_seed(0))
    assert abs(x.mean().item() - b.mean((logits,))[0, 0].item()) < 0.02  # E[x] = 2 * 0.8 - 1 = 0.6
