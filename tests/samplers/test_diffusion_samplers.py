"""Every diffusion sampler against Gaussian data, where the exact denoiser E[x0 | x] is known in closed form: the samples'
mean and covariance converge to the data's as the number of function evaluations grows, at each method's order."""

import pytest
import torch

from _gaussian import GaussianDenoiser
from genlab import registry
from genlab.errors import ConfigError
from genlab.samplers.diffusion import ddim, euler, run, steps_for

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
DETERMINISTIC = ["euler", "heun", "dpmpp_2m", "ddim"]


@pytest.fixture(scope="module")
def den():
    return GaussianDenoiser(MU, COV)


def exact_moments(name, den, steps, **kw):
    """A deterministic sampler with an affine denoiser is an affine map x_T -> A x_T + b of the standard normal noise,
    so its output is exactly N(b, A A^T): b from noise 0, the columns of A from unit noise vectors."""
    z = torch.cat([torch.zeros(1, 2), torch.eye(2)]).double()
    out = run(name, den, z, steps, **kw)
    b, A = out[0], (out[1:] - out[0]).T
    return b, A @ A.T


def errors(mean, cov):
    return float((mean - MU).abs().max()), float((cov - COV).abs().max())


def test_every_sampler_is_registered():
    assert {"ddpm", "ddim", "euler", "heun", "dpmpp_2m"} <= set(registry.list_samplers())


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_converge_to_the_data_moments(name, den):
    errs = [errors(*exact_moments(name, den, n)) for n in (20, 80, 320, 1280)]
    cov_errs = [e[1] for e in errs]
    assert all(b < a for a, b in zip(cov_errs, cov_errs[1:])), cov_errs
    # The floor of the mean error is the prior N(0, sigma_max^2) vs the true N(mu, Sigma + sigma_max^2): |mu| / sigma_max.
    assert errs[-1][0] < 5e-3 and errs[-1][1] < 2e-2, errs


@pytest.mark.parametrize("name, order", [("euler", 1), ("ddim", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_convergence_order(name, order, den):
    """Doubling the evaluations divides the covariance error by about 2^order (asymptotic regime)."""
    e1 = errors(*exact_moments(name, den, 100))[1]
    e2 = errors(*exact_moments(name, den, 200))[1]
    assert e1 / e2 > 0.8 * 2**order, (e1, e2)


@pytest.mark.parametrize("name, kw", [("ddpm", {}), ("ddim", {"eta": 1.0}), ("ddim", {"eta": 0.5}), ("heun", {"s_churn": 10.0})])
def test_stochastic_samplers_converge(name, kw, den):
    def mc(steps):
        g = torch.Generator().manual_seed(0)
        z = torch.randn(20000, 2, generator=g, dtype=torch.float64)
        out = run(name, den, z, steps, generator=g, **kw)
        return errors(out.mean(0), torch.cov(out.T))

    few, many = mc(5), mc(500)
    assert many[1] < few[1] / 5, (few, many)
    # Monte Carlo error of 20,000 samples: about 0.01 on the mean, 0.015 on the covariance.
    assert many[0] < 0.03 and many[1] < 0.04, many


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_ignore_the_generator(name, den):
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = run(name, den, z, 10, generator=torch.Generator().manual_seed(1))
    b = run(name, den, z, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


def test_stochastic_sampler_reproducible_under_a_seed(den):
    z = torch.randn(7, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = run("ddpm", den, z, 10, generator=torch.Generator().manual_seed(1))
    b = run("ddpm", den, z, 10, generator=torch.Generator().manual_seed(1))
    c = run("ddpm", den, z, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ddim_eta0_is_euler_on_the_same_grid(den):
    sig = den.sigmas("karras", 12)
    x = 500 * torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(ddim(den, x, sig), euler(den, x, sig), atol=1e-10)


def test_heun_nfe_and_options(den):
    calls = []

    class Counting(GaussianDenoiser):
        def __call__(self, x, sigma):
            calls.append(sigma)
            return super().__call__(x, sigma)

    run("heun", Counting(MU, COV), torch.zeros(3, 2, dtype=torch.float64), 10)
    assert steps_for("heun", 10) == 5 and len(calls) == 2 * 5 - 1
    with pytest.raises(ConfigError, match="no option 'eta'"):
        run("euler", den, torch.zeros(1, 2), 5, eta=0.5)
    with pytest.raises(ConfigError, match="steps"):
        run("euler", den, torch.zeros(1, 2), 0)
