"""VAE with a learned prior (model.prior = "mog" | "vamp"): the mixture density against brute force and a grid
integral, its samples' moments, the Monte Carlo KL against the closed form, the IWAE bound against the exact
marginal likelihood of a linear-Gaussian model with a mixture prior, sampling determinism and config checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from genlab.config import build
from genlab.errors import ConfigError
from genlab.models.distributions import gaussian_kl_standard
from genlab.models.vae.vae import VAE, VAEConfig, mixture_log_prob, mixture_sample
from genlab.spec import DataSpec

BINARY = DataSpec((1, 8, 8), num_classes=3, encoding="binary")


def _mixture(K: int = 3, D: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(K, D, generator=g, dtype=torch.float64)
    logvars = 0.5 * torch.randn(K, D, generator=g, dtype=torch.float64)
    log_w = torch.log_softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    return means, logvars, log_w


def _torch_mixture(means, logvars, log_w) -> MixtureSameFamily:
    comps = Independent(Normal(means, torch.exp(0.5 * logvars)), 1)
    return MixtureSameFamily(Categorical(logits=log_w), comps)


def test_mixture_log_prob_matches_torch_distributions():
    means, logvars, log_w = _mixture(K=5, D=4)
    z = 3 * torch.randn(7, 11, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = mixture_log_prob(z, means, logvars, log_w)
    assert ours.shape == (7, 11)
    torch.testing.assert_close(ours, _torch_mixture(means, logvars, log_w).log_prob(z))


def test_mixture_density_integrates_to_one_on_a_grid():
    means, logvars, log_w = _mixture(K=3, D=2)
    t = torch.linspace(-14, 14, 701, dtype=torch.float64)
    h = (t[1] - t[0]).item()
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1)  # (701, 701, 2)
    mass = mixture_log_prob(grid, means, logvars, log_w).exp().sum() * h * h
    assert mass.item() == pytest.approx(1.0, abs=1e-4)


def test_mixture_samples_have_the_mixture_mean_and_covariance():
    means, logvars, log_w = _mixture(K=3, D=2)
    z = mixture_sample(200_000, means, logvars, log_w, generator=torch.Generator().manual_seed(0))
    w = log_w.exp()
    mean = w @ means
    second = sum(w[k] * (torch.diag(logvars[k].exp()) + torch.outer(means[k], means[k])) for k in range(3))
    cov = second - torch.outer(mean, mean)
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=0.08, rtol=0.02)
    # temperature scales each component's standard deviation, not the means
    zt = mixture_sample(200_000, means, logvars, log_w, generator=torch.Generator().manual_seed(0), temperature=0.0)
    assert torch.isclose(zt[:, None, :], means[None], atol=1e-12).all(-1).any(-1).all()


def _vae(prior: str, spec: DataSpec = BINARY, **overrides) -> VAE:
    torch.manual_seed(0)
    cfg = build(VAEConfig, {"latent_dim": 4, "net": "mlp", "hidden": [16], "prior": prior, **overrides}, "model")
    return VAE(cfg, spec)


def _binary(n: int = 4) -> torch.Tensor:
    return torch.where(torch.rand(n, *BINARY.shape, generator=torch.Generator().manual_seed(0)) > 0.5, 1.0, -1.0)


@torch.no_grad()
def test_monte_carlo_kl_with_one_standard_normal_component_averages_to_the_closed_form():
    vae = _vae("mog", prior_components=1)
    vae.prior.means.zero_()
    vae.prior.logvars.zero_()
    x = _binary(4)
    mu, logvar = vae.encode(x)
    closed = gaussian_kl_standard(mu, logvar).sum(1).mean()
    torch.manual_seed(1)
    reps = 20_000
    mc = vae.loss({"x": x.repeat(reps, 1, 1, 1)})["kl"]
    # the estimator's standard deviation per sample is ~sqrt(2 * KL); its mean over 80,000 draws is within ~0.01 nats
    assert mc.item() == pytest.approx(closed.item(), abs=0.05)
    # and the whole training loss equals the standard-prior VAE's in expectation
    std = _vae("standard")
    std.load_state_dict({k: v for k, v in vae.state_dict().items() if not k.startswith("prior.")})
    torch.manual_seed(2)
    a = std.loss({"x": x.repeat(reps, 1, 1, 1)})["loss"]
    assert vae.loss({"x": x.repeat(reps, 1, 1, 1)})["loss"].item() == pytest.approx(a.item(), abs=0.1)


@torch.no_grad()
def _linear_gaussian(prior: str) -> tuple[VAE, torch.Tensor]:
    """p(x|z) = N(W z + b, Psi) with a mixture prior p(z) = sum_k w_k N(m_k, V_k): p(x) = sum_k w_k N(W m_k + b, W V_k W^T + Psi)
    exactly. The encoder is a fixed linear-Gaussian proposal, which the IWAE bound allows."""
    W = torch.tensor([[1.5, 1.0], [1.0, 1.5], [0.5, -0.3]], dtype=torch.float64)
    b = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    psi_sqrt = torch.tensor([0.5, 0.4, 0.3], dtype=torch.float64)
    cfg = VAEConfig(latent_dim=2, net="mlp", hidden=(), norm=False, decoder="gaussian", scale="channel", prior=prior, prior_components=3)
    vae = VAE(cfg, DataSpec((3,), encoding="continuous")).double()
    enc, dec = vae.encoder[0], vae.decoder[0]
    enc.weight.copy_(torch.tensor([[0.3, 0.2, 0.1], [0.1, 0.3, -0.1], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64))
    enc.bias.copy_(torch.tensor([0.0, 0.0, -1.0, -1.2], dtype=torch.float64))
    dec.weight.copy_(W)
    dec.bias.copy_(b)
    vae.head.log_scale.copy_(psi_sqrt.log())
    if prior == "mog":
        vae.prior.means.copy_(torch.tensor([[1.0, -1.0], [-1.5, 0.5], [0.0, 2.0]], dtype=torch.float64))
        vae.prior.logvars.copy_(torch.tensor([[-0.5, 0.2], [0.0, -1.0], [0.3, 0.3]], dtype=torch.float64))
        vae.prior.logits.copy_(torch.tensor([0.5, 0.0, -0.5], dtype=torch.float64))
    else:
        vae.pseudo_inputs.copy_(torch.tensor([[3.0, 1.0, 0.0], [-2.0, -3.0, 1.0], [0.0, 4.0, -2.0]], dtype=torch.float64))
    means, logvars, log_w = vae.prior_params()
    locs = means @ W.T + b  # (K, 3)
    covs = torch.stack([W @ torch.diag(v.exp()) @ W.T + torch.diag(psi_sqrt**2) for v in logvars])
    marginal = MixtureSameFamily(Categorical(logits=log_w), MultivariateNormal(locs, covs))
    x = torch.tensor([[0.5, -1.0, 0.2], [2.0, 1.5, 0.6], [-1.0, 0.3, -0.4]], dtype=torch.float64)
    return vae, -marginal.log_prob(x), x


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_iwae_bound_with_a_learned_prior_against_the_exact_marginal_likelihood(prior):
    vae, exact, x = _linear_gaussian(prior)
    reps = 1000
    xs = x.repeat_interleave(reps, dim=0)
    g = torch.Generator().manual_seed(0)
    means = []
    for k in (1, 8, 64, 512):
        bound = vae.nll_bound(xs, k=k, generator=g).view(3, reps)
        m, se = bound.mean(1), bound.std(1) / math.sqrt(reps)
        assert (m > exact - 4 * se - 1e-6).all(), (k, m, exact)  # an upper bound on -log p(x) in expectation
        means.append(m)
    gaps = torch.stack(means) - exact  # (4, 3)
    assert (gaps[:-1] > gaps[1:]).all(), gaps  # tightens as k grows
    assert (gaps[0] > 0.05).all() and (gaps[-1] < 0.02).all(), gaps  # a loose proposal, nearly exact at k = 512
    # the training loss reports the same ELBO in expectation (its KL is the one-sample Monte Carlo estimate)
    torch.manual_seed(0)
    reps = 40_000
    elbo = torch.stack([vae.loss({"x": x[i : i + 1].repeat(reps, 1)})["nll_bound"] for i in range(3)])
    ref = vae.nll_bound(x.repeat_interleave(reps, dim=0), k=1, generator=g).view(3, reps)
    se = ref.std(1) * math.sqrt(2 / reps)  # of the difference of two independent means
    assert ((elbo - ref.mean(1)).abs() < 4 * se).all(), (elbo, ref.mean(1), se)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_sampling_draws_from_the_learned_prior_and_is_deterministic_under_a_seed(prior):
    vae = _vae(prior, prior_components=5).eval()
    a = vae.sample(16, generator=torch.Generator().manual_seed(3))
    b = vae.sample(16, generator=torch.Generator().manual_seed(3))
    c = vae.sample(16, generator=torch.Generator().manual_seed(4))
    assert a.shape == (16, *BINARY.shape) and torch.equal(a, b) and not torch.equal(a, c)
    # the latents come from the learned prior: temperature 0 decodes exactly the components' means
    means, _, _ = vae.prior_params()
    z0 = vae.sample(8, generator=torch.Generator().manual_seed(5), temperature=0.0)
    assert all(any(torch.allclose(img, vae._to_data(vae.decode(m[None]))[0], atol=1e-5) for m in means) for img in z0)


def test_learned_prior_parameters_move_toward_the_aggregate_posterior():
    """Training only the prior's parameters lowers the KL term: p(z) gains mass where q(z|x) puts the codes."""
    vae = _vae("mog", prior_components=4)
    x = _binary(32)
    opt = torch.optim.Adam(vae.prior.parameters(), lr=5e-2)
    torch.manual_seed(0)
    with torch.no_grad():
        before = vae.loss({"x": x.repeat(50, 1, 1, 1)})["kl"]
    for _ in range(100):
        out = vae.loss({"x": x})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    with torch.no_grad():
        after = vae.loss({"x": x.repeat(50, 1, 1, 1)})["kl"]
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"prior": "mog", "free_bits": 0.5}, "model.free_bits"),
        ({"prior": "vamp", "free_bits": 0.5}, "model.free_bits"),
        ({"prior": "vamp", "conditional": True}, "model.prior='vamp'"),
    ],
)
def test_configs_that_cannot_combine_are_refused(overrides, key):
    with pytest.raises(ConfigError, match=key):
        _vae(**overrides) if "prior" not in overrides else _vae(overrides.pop("prior"), **overrides)


def test_warmup_scales_the_monte_carlo_kl():
    vae = _vae("mog", kl_warmup_steps=4)
    x = _binary(8)
    torch.manual_seed(0)
    out = vae.loss({"x": x})
    assert out["loss"].item() == pytest.approx(out["recon"].item(), rel=1e-6)  # weight 0 at step 0
    vae.kl_step.fill_(4)
    torch.manual_seed(0)
    out = vae.loss({"x": x})
    assert out["loss"].item() == pytest.approx(out["recon"].item() + out["kl"].item(), rel=1e-5)
