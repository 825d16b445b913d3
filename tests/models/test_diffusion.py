"""Diffusion maths: the forward process against its closed form, the sigma view of a VP model, the preconditioning identities,
loss weights, classifier-free guidance, label dropout, and the variational bound against the exact NLL of Gaussian data."""

import math

import pytest
import torch

from _gaussian import GaussianDenoiser
from genlab.config import build
from genlab.errors import ConfigError
from genlab.models.diffusion import DiffusionConfig, DiffusionModel
from genlab.models.diffusion import schedules as S
from genlab.models.diffusion.vlb import discretized_gaussian_log_prob, variational_bound
from genlab.spec import DataSpec


def make(spec=DataSpec((1, 8, 8)), **kw):
    torch.manual_seed(0)
    cfg = build(DiffusionConfig, {"channels": [8, 8], "attn_resolutions": [4], "heads": 2, **kw}, "model")
    return DiffusionModel(cfg, spec).double()


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_closed_form_q_xt_x0_matches_iterating_q_xt_xtm1(schedule):
    """Iterating x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps gives mean sqrt(abar_t) x0 and variance 1 - abar_t."""
    betas = S.betas_for(schedule, 1000)
    abar = S.alpha_bar(betas)
    assert torch.all(betas > 0) and torch.all(betas < 1) and torch.all(abar[1:] < abar[:-1])
    mean, var = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    means, variances = [], []
    for b in betas:
        mean, var = (1 - b).sqrt() * mean, (1 - b) * var + b
        means.append(mean), variances.append(var)
    assert torch.allclose(torch.stack(means), abar.sqrt(), rtol=1e-10)
    assert torch.allclose(torch.stack(variances), 1 - abar, rtol=1e-8, atol=1e-12)
    # Monte Carlo of the chain, and the sigma view x_t / sqrt(abar_t) = x0 + sigma_t eps.
    g = torch.Generator().manual_seed(0)
    x = torch.full((20000,), 0.7, dtype=torch.float64)
    t = 150
    for b in betas[: t + 1]:
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    assert abs(x.mean() - abar[t].sqrt() * 0.7) < 0.02 and abs(x.var() - (1 - abar[t])) < 0.02
    sig = S.vp_sigmas(abar)[t]
    xs = x / abar[t].sqrt()
    assert abs(xs.mean() - 0.7) < 0.03 and abs(xs.std() - sig) / sig < 0.02


def test_linear_schedule_and_karras_grid():
    b = S.betas_for("linear", 1000)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    k = S.karras_sigmas(10, 0.002, 80.0, rho=7.0)
    assert k[0] == pytest.approx(80.0) and k[-2] == pytest.approx(0.002) and k[-1] == 0 and torch.all(k[1:] < k[:-1])
    inner = k[:-1] ** (1 / 7)
    assert torch.allclose(inner[1:] - inner[:-1], (inner[1] - inner[0]).expand(9))  # evenly spaced in sigma^(1/rho)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_preconditioning_targets(prediction):
    """With x = x0 + sigma eps the network's target (x0 - c_skip x) / c_out is eps, x0 or v = sqrt(abar) eps - sqrt(1 - abar) x0,
    and D = c_skip x + c_out * target recovers x0."""
    m = make(prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64), torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 150.0], dtype=torch.float64)
    x = x0 + sigma.view(-1, 1, 1, 1) * eps
    c_skip, c_out, c_in = (c.view(-1, 1, 1, 1) for c in m.preconditioning(sigma))
    target = (x0 - c_skip * x) / c_out
    abar = 1 / (1 + sigma.view(-1, 1, 1, 1) ** 2)
    expected = {"eps": eps, "x0": x0, "v": abar.sqrt() * eps - (1 - abar).sqrt() * x0}[prediction]
    assert torch.allclose(target, expected, atol=1e-10)
    assert torch.allclose(c_skip * x + c_out * target, x0, atol=1e-10)
    assert torch.allclose(c_in * x, abar.sqrt() * x)  # the VP network sees x_t = sqrt(abar) x0 + sqrt(1 - abar) eps


def test_edm_preconditioning_identities():
    """EDM (Karras et al. 2022, appendix B.6): for data of std sigma_data, c_in x and the target both have unit variance,
    c_out is the smallest error amplification, and the EDM weight makes the loss the target's plain MSE."""
    sd = 0.5
    m = make(formulation="edm", sigma_data=sd)
    g = torch.Generator().manual_seed(0)
    n = 200000
    x0 = sd * torch.randn(n, generator=g, dtype=torch.float64)
    eps = torch.randn(n, generator=g, dtype=torch.float64)
    for s in [0.002, 0.1, 0.5, 2.0, 80.0]:
        sigma = torch.full((1,), s, dtype=torch.float64)
        c_skip, c_out, c_in = m.preconditioning(sigma)
        assert c_skip.item() == pytest.approx(sd**2 / (s**2 + sd**2))
        assert abs(c_out.item()) == pytest.approx(s * sd / math.sqrt(s**2 + sd**2))
        x = x0 + s * eps
        assert (c_in * x).var().item() == pytest.approx(1.0, rel=0.02)
        assert ((x0 - c_skip * x) / c_out).var().item() == pytest.approx(1.0, rel=0.02)
        assert (m.loss_weight(sigma) * c_out**2).item() == pytest.approx(1.0)
        assert m.c_noise(sigma).item() == pytest.approx(250 * math.log(s))


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weight(prediction):
    """Hang et al. 2023: min(SNR, gamma) in x0-space is min(SNR, gamma) / SNR on the eps-loss and / (SNR + 1) on the v-loss."""
    m = make(prediction=prediction, weighting="min_snr", snr_gamma=5.0)
    sigma = torch.tensor([0.05, 0.3, 1.0, 10.0], dtype=torch.float64)
    snr = 1 / sigma**2
    in_target_space = m.loss_weight(sigma) * m.preconditioning(sigma)[1] ** 2
    expected = {"eps": snr.clamp(max=5) / snr, "x0": snr.clamp(max=5), "v": snr.clamp(max=5) / (snr + 1)}[prediction]
    assert torch.allclose(in_target_space, expected)
    uniform = make(prediction=prediction)
    assert torch.allclose(uniform.loss_weight(sigma) * uniform.preconditioning(sigma)[1] ** 2, torch.ones(4, dtype=torch.float64))


def test_vp_noise_input_is_the_timestep():
    m = make(timesteps=50)
    table = m.vp_sigma_table.double()
    assert torch.allclose(m.c_noise(table), torch.arange(50, dtype=torch.float64), atol=1e-6)
    mid = (table[10] * table[11]).sqrt()  # geometric midpoint -> halfway in log sigma
    assert m.c_noise(mid.view(1)).item() == pytest.approx(10.5, abs=1e-6)
    grid = m.sigma_grid("discrete", 50)
    assert torch.allclose(grid[:-1].flip(0), table) and grid[-1] == 0


def test_classifier_free_guidance_combines_conditional_and_unconditional():
    m = make(spec=DataSpec((1, 8, 8), num_classes=3), conditional=True).eval()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    s = torch.full((4,), 0.7, dtype=torch.float64)
    d_c = m.denoise(x, s, y)
    d_u = m.denoise(x, s, torch.full_like(y, m.null_label))
    assert not torch.allclose(d_c, d_u)
    for w in (0.0, 1.0, 3.0):  # images: the sampler's estimate is clipped to [-1, 1]
        assert torch.allclose(m.denoiser(y, w)(x, 0.7), (d_u + w * (d_c - d_u)).clamp(-1, 1), atol=1e-10)


def test_label_dropout_rate():
    m = make(spec=DataSpec((1, 8, 8), num_classes=3), conditional=True, p_uncond=0.25).train()
    torch.manual_seed(0)
    y = m._train_labels(torch.zeros(20000, dtype=torch.long), 20000, torch.zeros(1))
    assert (y == m.null_label).double().mean().item() == pytest.approx(0.25, abs=0.01)
    assert set(y.unique().tolist()) == {0, m.null_label}
    assert torch.equal(m.eval()._train_labels(torch.zeros(5, dtype=torch.long), 5, torch.zeros(1)), torch.zeros(5, dtype=torch.long))


def test_lowres_condition_reaches_the_network():
    m = make(lowres=2).eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    s = torch.full((2,), 0.5, dtype=torch.float64)
    a = m.denoise(x, s, cond=m.lowres_condition(m.downsample(x)))
    b = m.denoise(x, s, cond=m.lowres_condition(m.downsample(-x)))
    assert not torch.allclose(a, b)
    assert m.downsample(x).shape == (2, 1, 4, 4)


def test_bad_configs_are_clear():
    with pytest.raises(ConfigError, match="conditional"):
        make(spec=DataSpec((1, 8, 8)), conditional=True)
    with pytest.raises(ConfigError, match="lowres"):
        make(lowres=3)
    with pytest.raises(ConfigError, match="sampler"):
        make(sampler="dpm_solver")
    with pytest.raises(ConfigError, match="no option"):
        make().sample(2, temperature=0.5)
    with pytest.raises(ConfigError, match="network='unet'"):
        make(spec=DataSpec((2,), encoding="continuous"), network="unet")


def test_discretized_gaussian_is_a_distribution_over_the_levels():
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    for mean, scale in [(0.0, 0.01), (0.93, 0.002), (-1.2, 0.3), (0.5, 5.0)]:
        p = discretized_gaussian_log_prob(levels, torch.full_like(levels, mean), scale).exp()
        assert p.sum().item() == pytest.approx(1.0, abs=1e-9)
    # Far in a tail the log-probability stays finite.
    lp = discretized_gaussian_log_prob(torch.tensor([0.9], dtype=torch.float64), torch.tensor([-0.9], dtype=torch.float64), 0.01)
    assert torch.isfinite(lp).all() and lp.item() < -1000


def test_variational_bound_of_the_exact_denoiser_approaches_the_true_nll():
    """Gaussian data: with the exact denoiser the bound is >= -log p(x0) and the gap closes as the grid refines
    (Riemann sum of the continuous-time bound, which is tight for the optimal denoiser; Kingma et al. 2021)."""
    mu = torch.tensor([0.3, -0.2], dtype=torch.float64)
    cov = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
    den = GaussianDenoiser(mu, cov)
    g = torch.Generator().manual_seed(0)
    x0 = torch.distributions.MultivariateNormal(mu, cov).sample((2000,))
    true_nll = -den.log_prob(x0).mean().item()
    gaps = []
    for n in (20, 200, 2000):
        sig = torch.logspace(-3, 3, n, dtype=torch.float64)
        out = variational_bound(den, x0, sig, prior_std=float(sig[-1]), bins=None, generator=g, chunk=2**16)
        gaps.append(out["nll_bound"].mean().item() - true_nll)
    assert gaps[2] > -0.02, gaps  # a bound: >= 0 up to Monte Carlo error
    # First order in the grid spacing: 10x more levels, about 10x smaller gap (measured 14.5, 0.84, 0.078 nats).
    assert gaps[0] > 5 * gaps[1] > 25 * gaps[2] and gaps[2] < 0.1, gaps


def test_unbiased_term_sampling_matches_the_full_sum():
    mu, cov = torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64) * 0.4
    den = GaussianDenoiser(mu, cov)
    torch.manual_seed(0)  # the data; the estimator's noise comes from its own generators
    x0 = torch.distributions.MultivariateNormal(mu, cov).sample((3000,))
    sig = torch.logspace(-2, 2, 100, dtype=torch.float64)
    full = variational_bound(den, x0, sig, 100.0, bins=None, generator=torch.Generator().manual_seed(0))["nll_bound"]
    est = variational_bound(den, x0, sig, 100.0, bins=None, terms=5, generator=torch.Generator().manual_seed(1))["nll_bound"]
    # Unbiased: the per-example differences average to zero within 4 standard errors (the full sum
    # itself draws its x_t noise, so compare against both estimators' joint spread).
    diff = est - full
    se = diff.std() / len(diff) ** 0.5
    assert abs(diff.mean().item()) < 4 * se.item() and se.item() < 0.2, (diff.mean().item(), se.item())


def test_model_bound_in_bits_per_dim():
    from genlab.metrics.likelihood import bits_per_dim

    spec = DataSpec((1, 8, 8), encoding="8bit")
    m = make(spec=spec, timesteps=50, vlb_terms=0).eval()
    x = torch.randint(0, 256, (3, 1, 8, 8)).double() / 127.5 - 1
    nll = m.nll_bound(x, generator=torch.Generator().manual_seed(0))
    bpd = bits_per_dim(nll, spec)
    assert nll.shape == (3,) and torch.all(bpd > 0) and torch.all(torch.isfinite(bpd))
