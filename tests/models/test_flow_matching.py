"""Flow matching against closed forms on Gaussian data: the velocity E[eps - x_0 | x_t] of N(mu, s^2 I) data is affine in x_t,
so the denoiser, the path's marginals, the ODE's log-density and every sampler's limit are known exactly."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from _gaussian import GaussianDenoiser, GaussianVelocity
from _threads import one_thread  # noqa: F401
from genlab import registry
from genlab.config import build
from genlab.errors import DataError
from genlab.models.fast.flow_matching import T_SCALE, FlowMatchingConfig, FlowMatchingModel, ot_pairs
from genlab.spec import DataSpec

MU, S = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks run fastest on one thread


def make(spec=DataSpec((2,), encoding="continuous"), analytic=True, **kw):
    torch.manual_seed(0)
    model = FlowMatchingModel(build(FlowMatchingConfig, {"width": 16, "depth": 1, **kw}, "model"), spec).double().eval()
    if analytic:
        model.net = GaussianVelocity(MU, S, T_SCALE)
    return model


def test_denoiser_in_sigma_form_is_the_posterior_mean():
    """D(x; sigma) = x_t - t v(x_t, t) at x_t = x / (1 + sigma), t = sigma / (1 + sigma) equals E[x_0 | x_0 + sigma eps = x]."""
    model, ref = make(), GaussianDenoiser(MU, S**2 * torch.eye(2))
    den = model.denoiser()
    x = torch.randn(7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    for sigma in (0.01, 0.3, 1.0, 7.0, 80.0):
        assert torch.allclose(den(x, sigma), ref(x, sigma), atol=1e-12), sigma


def test_ode_transports_noise_along_the_closed_form_marginals():
    """The ODE of the optimal field maps x_1 = z to x_t = (1 - t) mu + sqrt(V_t) z, V_t = (1 - t)^2 s^2 + t^2 (the marginal
    N((1 - t) mu, V_t I) of x_t = (1 - t) x_0 + t eps, pushed pointwise)."""
    model = make()
    z = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    path, ts = model.trajectory(z, steps=2000)
    for k in (0, 500, 1000, 1500, 2000):
        t = float(ts[k])
        exact = (1 - t) * MU + math.sqrt((1 - t) ** 2 * S**2 + t**2) * z
        assert torch.allclose(path[k], exact, atol=2e-3), t
    assert abs(path[-1].mean(0) - MU).max() < 0.05 and abs(path[-1].std(0) - S).max() < 0.05


def test_exact_trace_log_prob_matches_the_gaussian_density():
    model = make(trace="exact", likelihood_steps=16)
    x = MU + S * torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 1.5
    exact = torch.distributions.Normal(MU, S).log_prob(x).sum(1)
    assert torch.allclose(model.log_prob(x), exact, atol=1e-5)
    assert torch.allclose(model.nll(x), -exact, atol=1e-5)


def test_hutchinson_estimate_is_reproducible_and_agrees_with_the_exact_trace():
    """On a random network (a non-diagonal Jacobian, where one probe is not exact) Hutchinson's estimate with many probes is
    close to the exact divergence; a fixed seed repeats it and another seed changes it."""
    model = make(analytic=False, hutchinson_samples=1000, likelihood_steps=2)
    for p in model.net.parameters():  # a field far from zero, so the trace terms matter
        p.data.mul_(3.0)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = model.log_prob(x, trace="exact")
    est = model.log_prob(x, trace="hutchinson")
    model.config.hutchinson_samples = 1
    a, b = (model.log_prob(x, trace="hutchinson", generator=torch.Generator().manual_seed(s)) for s in (5, 6))
    assert torch.equal(a, model.log_prob(x, trace="hutchinson", generator=torch.Generator().manual_seed(5)))
    assert not torch.allclose(a, b)  # one probe is noisy here ...
    assert (est - exact).abs().max() < 0.15 * (a - exact).abs().max()  # ... a thousand are not


@pytest.mark.parametrize("sampler", sorted(registry.list_samplers()))
def test_every_sampler_converges_to_the_gaussian(sampler):
    """100 evaluations (first-order Euler is within 1% there); ancestral sampling loses variance on coarse grids (its step uses
    the point estimate D instead of the posterior), so it gets 200."""
    model = make(sampler=sampler)
    x = model.sample(4000, steps=200 if registry.sampler(sampler).stochastic else 100, generator=torch.Generator().manual_seed(4))
    assert (x.mean(0) - MU).abs().max() < 0.03, x.mean(0)
    assert (x.std(0) - S).abs().max() < 0.03, x.std(0)


def test_ddim_on_the_uniform_grid_is_euler_in_t():
    """ddim (eta = 0) in sigma form walks exactly the Euler steps x_{t'} = x_t + (t' - t) v of the flow from x = noise at t_max."""
    model = make(analytic=False)
    z = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    x, steps = z.clone(), 5
    ts = torch.linspace(model.t_max, 0, steps + 1, dtype=torch.float64)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * model.velocity(x, t.expand(6))
    assert torch.allclose(model.decode(z, sampler="ddim", steps=steps), x, atol=1e-12)
    one = model.decode(z, sampler="ddim", steps=1)
    t = torch.full((6,), model.t_max, dtype=torch.float64)
    assert torch.allclose(one, z - model.t_max * model.velocity(z, t), atol=1e-12)


def test_guidance_mixes_conditional_and_unconditional_velocities():
    model = make(DataSpec((2,), num_classes=3, encoding="continuous"), analytic=False, conditional=True)
    x = torch.randn(4, 2, dtype=torch.float64)
    t = torch.full((4,), 0.3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    v_c, v_u = model.velocity(x, t, y), model.velocity(x, t, torch.full_like(y, 3))
    assert torch.allclose(model.guided_velocity(x, t, y, 2.5), v_u + 2.5 * (v_c - v_u), atol=1e-12)
    assert torch.allclose(model.guided_velocity(x, t, y, 0.0), v_u) and torch.allclose(model.guided_velocity(x, t, y, 1.0), v_c)


def test_ot_pairs_is_the_optimal_permutation():
    g = torch.Generator().manual_seed(7)
    x0, eps = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    best = min(sum(((x0[i] - eps[p[i]]) ** 2).sum() for i in range(6)) for p in itertools.permutations(range(6)))
    paired = ot_pairs(x0, eps)
    assert torch.allclose(((x0 - paired) ** 2).sum(), best)
    assert sorted(paired[:, 0].tolist()) == sorted(eps[:, 0].tolist())  # a permutation of the same noise


def test_logit_normal_times():
    model = make(logit_mean=0.5, logit_std=0.8)
    torch.manual_seed(0)
    t = model.training_times(50000, torch.zeros(1, dtype=torch.float64))
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean() - 0.5) < 0.02 and abs(logit.std() - 0.8) < 0.02 and 0 < t.min() and t.max() < 1


def test_the_optimal_field_minimises_the_loss():
    """The flow-matching loss of the true E[eps - x_0 | x_t] is below that of a perturbed field, on the same draws."""
    model = make(time_sampling="uniform").train()
    x = MU + S * torch.randn(4000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    torch.manual_seed(9)
    best = model.loss({"x": x})["loss"]
    model.net.mu = MU + 0.1
    torch.manual_seed(9)
    assert model.loss({"x": x})["loss"] > best + 1e-3


def test_reflow_pairs_replace_the_data(tmp_path):
    """With model.pairs the loss regresses noise -> sample of the file: zero for pairs on a straight field's own lines."""
    model = make(time_sampling="uniform")
    z = torch.randn(64, 2, dtype=torch.float64)
    np.savez(tmp_path / "pairs.npz", noise=z.numpy(), x=(z + 2.0).numpy())
    model.config.pairs = str(tmp_path / "pairs.npz")
    model.net = nn.Module()  # v = eps - x_0 = -2 everywhere: exactly the pairs' velocity
    model.net.anchor = nn.Parameter(torch.zeros((), dtype=torch.float64))
    model.net.forward = lambda x, c, y=None: torch.full_like(x, -2.0)
    assert model.loss({"x": torch.zeros(8, 2, dtype=torch.float64)})["loss"] < 1e-20
    np.savez(tmp_path / "bad.npz", noise=z[:, :1].numpy(), x=z[:, :1].numpy())
    model.config.pairs, model._pairs = str(tmp_path / "bad.npz"), None
    with pytest.raises(DataError, match="shape"):
        model.loss({"x": torch.zeros(8, 2, dtype=torch.float64)})
