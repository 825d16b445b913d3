"""Consistency models: the boundary condition f(x, sigma_min) = x, the iCT schedule pieces against their formulas, the
distillation target against a hand-computed Heun step, multistep sampling with the exact consistency function of Gaussian
data, and distillation / consistency training closing the gap to the ODE's solution on a 2-D Gaussian."""

import math

import pytest
import torch

from _gaussian import GaussianDenoiser
from _threads import one_thread  # noqa: F401
from genlab.config import build
from genlab.models.fast.consistency import (
    ConsistencyConfig,
    ConsistencyModel,
    curriculum,
    karras_levels,
    lognormal_index_weights,
    ode_step,
    pseudo_huber,
)
from genlab.spec import DataSpec

MU, S = torch.tensor([1.0, -0.5], dtype=torch.float64), 0.5


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks run fastest on one thread


def make(spec=DataSpec((2,), encoding="continuous"), **kw):
    torch.manual_seed(0)
    return ConsistencyModel(build(ConsistencyConfig, {"width": 32, "depth": 1, **kw}, "model"), spec).double()


SMALL = {"sigma_max": 10.0, "sigma_last": 1.0}  # a short noise range, so a few hundred steps of a tiny net suffice


def exact_f(x, sigma, y=None):
    """The true consistency function of N(mu, s^2 I) data: the ODE's solution map x_sigma -> x_0 = mu + s (x - mu) / sqrt(s^2 + sigma^2)."""
    return MU + S * (x - MU) / (S**2 + sigma[:, None] ** 2).sqrt()


@pytest.mark.parametrize(
    "spec, kw",
    [
        (DataSpec((2,), encoding="continuous"), {}),
        (DataSpec((3, 8, 8), num_classes=3), {"channels": [8, 8], "attn_resolutions": [4], "heads": 2, "conditional": True}),
    ],
)
def test_boundary_condition_holds_exactly(spec, kw):
    model = make(spec, **kw)
    for p in model.parameters():
        p.data.normal_()  # any weights
    x = torch.randn(4, *spec.shape, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3]) % 3 if kw.get("conditional") else None
    sigma = torch.full((4,), model.config.sigma_min, dtype=torch.float64)
    assert torch.equal(model.consistency_fn(x, sigma, y), x)
    assert not torch.allclose(model.consistency_fn(x, sigma * 2, y), x)


def test_pseudo_huber_and_curriculum_and_levels():
    a, b = torch.tensor([[3.0, 0.0]]), torch.zeros(1, 2)
    assert pseudo_huber(a, b, 4.0).item() == pytest.approx(1.0)  # sqrt(9 + 16) - 4
    assert pseudo_huber(a, a, 0.03).item() == 0
    # iCT: N(k) doubles from s0 + 1 to s1 + 1 in log2(s1 / s0) + 1 equal stages of K' = K / 8 steps (s0 = 10, s1 = 1280).
    K = 8000
    assert [curriculum(k, K, 10, 1280) for k in (0, 999, 1000, 2000, 6999, 7000, 7999)] == [11, 11, 21, 41, 641, 1281, 1281]
    sig = karras_levels(11, 0.002, 80.0, 7.0)
    assert sig[0] == pytest.approx(0.002) and sig[-1] == pytest.approx(80.0) and torch.all(sig[1:] > sig[:-1])
    w = lognormal_index_weights(sig, -1.1, 2.0)
    normal = torch.distributions.Normal(-1.1, 2.0)
    assert torch.allclose(w / 2, normal.cdf(sig[1:].log()) - normal.cdf(sig[:-1].log()), atol=1e-12)  # erf = 2 Phi - 1


def test_distillation_target_is_the_hand_computed_heun_step():
    """1-D data N(0, 1): D(x; sigma) = x / (1 + sigma^2). From x = 1 at sigma = 2 to sigma = 1: d = (1 - 1/5) / 2 = 0.4, Euler
    point 1 - 0.4 = 0.6, D(0.6; 1) = 0.3, d' = 0.3, Heun x = 1 - (0.4 + 0.3) / 2 = 0.65 (the exact ODE gives sqrt(2/5) = 0.632)."""
    den = GaussianDenoiser(torch.zeros(1), torch.eye(1))
    x = torch.ones(1, 1, dtype=torch.float64)
    assert ode_step(den, x, 2.0, 1.0, "heun").item() == pytest.approx(0.65)
    assert ode_step(den, x, 2.0, 1.0, "euler").item() == pytest.approx(0.6)

    class Teacher:
        def denoiser(self, labels, guidance):
            return den

    model = make(DataSpec((1,), encoding="continuous"))
    per_example = model.teacher_target(
        Teacher(), torch.tensor([[1.0], [1.0]], dtype=torch.float64), torch.tensor([2.0, 4.0]), torch.tensor([1.0, 2.0]), None
    )
    assert per_example[0].item() == pytest.approx(0.65)
    assert per_example[1].item() == pytest.approx(ode_step(den, x, 4.0, 2.0).item())


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_multistep_sampling_with_the_exact_consistency_function(steps):
    """With f the true solution map, Algorithm 1's renoising x + sqrt(sigma^2 - sigma_min^2) z keeps the samples ~ N(mu, s^2)."""
    model = make()
    calls = []
    model.consistency_fn = lambda x, s, y=None: calls.append(1) or exact_f(x, s)
    x = model.sample(20000, steps=steps, generator=torch.Generator().manual_seed(0))
    assert len(calls) == steps
    assert (x.mean(0) - MU).abs().max() < 0.02 and (x.std(0) - S).abs().max() < 0.02


class _GaussianTeacher:
    """A stand-in teacher run: the exact denoiser of the Gaussian data."""

    spec, conditional = DataSpec((2,), encoding="continuous"), False

    def to(self, device):
        return self

    def denoiser(self, labels=None, guidance=None):
        return GaussianDenoiser(MU, S**2 * torch.eye(2))


def _gap(model, n=2000):
    """Mean distance of the 1-step samples f(sigma_max z, sigma_max) to the ODE's solution from the same z."""
    z = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * model.config.sigma_max
    s = torch.full((n,), model.config.sigma_max, dtype=torch.float64)
    with torch.no_grad():
        return (model.consistency_fn(z, s) - exact_f(z, s)).norm(dim=1).mean().item()


def _train(model, steps, lr=3e-3, batch=128):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(2)
    model.train()
    for _ in range(steps):
        x = MU + S * torch.randn(batch, 2, dtype=torch.float64, generator=g)
        opt.zero_grad()
        model.loss({"x": x})["loss"].backward()
        opt.step()
    model.eval()


def test_distillation_closes_the_gap_to_the_teachers_ode():
    torch.manual_seed(0)
    model = make(teacher="unused-run-dir", teacher_steps=8, **SMALL)
    model._teacher._model = _GaussianTeacher()
    before = _gap(model)
    _train(model, 300, lr=5e-3)
    after = _gap(model)
    assert after < 0.2 * before, (before, after)


def test_consistency_training_from_scratch_learns_the_gaussian():
    """No teacher: the same z at two neighbouring levels gives the target. Short training leaves the samples under-dispersed
    (a CT target at finite N is biased towards the mean), but the 1-step map moves well towards the ODE's solution."""
    model = make(s0=4, s1=16, curriculum_steps=300, **SMALL)
    before = _gap(model)
    _train(model, 300, lr=5e-3)
    assert int(model.train_step) == 300 and model.discretisation().numel() == 17  # the curriculum reached N = s1 + 1
    x = model.sample(4000, generator=torch.Generator().manual_seed(3))
    assert _gap(model) < 0.4 * before
    assert (x.mean(0) - MU).abs().max() < 0.2, x.mean(0)
    assert math.isfinite(model.loss({"x": x})["loss"].item())


def test_teacher_guidance_skips_the_dropped_labels():
    """Label dropout: the teacher denoises the examples whose label was dropped without guidance (w = 0), the others with w."""

    class Teacher:
        conditional = True

        def denoiser(self, labels, guidance):
            return lambda x, s: x * 0 + guidance + 10 * labels[:, None].to(x)

    model = make(DataSpec((1,), num_classes=3, encoding="continuous"), conditional=True, teacher_guidance=2.5, teacher_solver="euler")
    x, s = torch.ones(4, 1, dtype=torch.float64), torch.full((4,), 2.0, dtype=torch.float64)
    y = torch.tensor([0, 3, 2, 3])  # 3 = the null label
    out = model.teacher_target(Teacher(), x, s, s / 2, y)
    d = torch.tensor([2.5, 30.0, 22.5, 30.0], dtype=torch.float64)[:, None]  # D per example: w + 10 y
    assert torch.allclose(out, x + (1.0 - 2.0) * (x - d) / 2.0)  # one Euler step from sigma = 2 to 1
