"""Consistency models: the boundary condition f(x, sigma_min) = x in both parametrisations, the iCT and ECT schedule pieces
against their formulas, the flow parametrisation starting at a flow-matching run's denoiser, the distillation target against a
hand-computed Heun step, multistep sampling with the exact consistency function of Gaussian data, and distillation /
consistency training / consistency tuning closing the gap to the ODE's solution on a 2-D Gaussian."""

import math

import pytest
import torch

from _gaussian import GaussianDenoiser
from _threads import one_thread  # noqa: F401
from genlab.config import build
from genlab.errors import ConfigError
from genlab.models.fast.consistency import (
    ConsistencyConfig,
    ConsistencyModel,
    curriculum,
    ect_pairs,
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
        (DataSpec((2,), encoding="continuous"), {"parametrisation": "flow"}),
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


def test_ect_pairs_follow_the_mapping_function():
    """sigma_r = sigma_t (1 - n / q^a), n = 1 + 8 sigmoid(-sigma_t), floored at sigma_min; by hand for q = 2."""
    s = torch.tensor([0.002, 1.0, 10.0, 80.0], dtype=torch.float64)
    assert torch.equal(ect_pairs(s, 0, 2.0, 0.002), torch.full((4,), 0.002, dtype=torch.float64))  # stage 0: the data is the target
    n = 1 + 8 / (1 + math.exp(1.0))  # 3.15 at sigma = 1: 1 - n / 2 < 0 at stage 1, 1 - n / 4 = 0.212 at stage 2
    assert ect_pairs(s, 1, 2.0, 0.002)[1].item() == 0.002
    assert ect_pairs(s, 2, 2.0, 0.002)[1].item() == pytest.approx(1 - n / 4)
    assert ect_pairs(s, 1, 2.0, 0.002)[2].item() == pytest.approx(10 * (1 - (1 + 8 / (1 + math.exp(10.0))) / 2))
    late = ect_pairs(s, 8, 2.0, 0.002)
    assert torch.all(late[1:] < s[1:]) and late[3].item() == pytest.approx(80 * (1 - 1 / 256), rel=1e-6)
    model = make(levels="ect", curriculum_steps=80, ect_stages=8)
    assert model.stage() == 0
    model.train_step.fill_(11)
    assert model.stage() == 2  # ceil(8 * 11 / 80)


def test_flow_parametrisation_starts_at_the_flow_matching_denoiser():
    """init_from a flow-matching model: f(x, sigma) = D_flow(x; sigma) + sigma_min x_t + t_min v (exactly), and the consistency
    loss at stage 0 is then the flow's own regression towards the data; an edm student refuses a velocity network."""
    from genlab.models.fast.flow_matching import FlowMatchingConfig, FlowMatchingModel

    torch.manual_seed(0)
    flow = FlowMatchingModel(build(FlowMatchingConfig, {"width": 32, "depth": 1}, "model"), DataSpec((2,), encoding="continuous"))
    flow = flow.double()
    student = make(parametrisation="flow", init_from="a-flow-run", levels="ect")
    student._source._model = flow
    student.train()
    student.loss({"x": torch.randn(8, 2, dtype=torch.float64)})  # the first training step copies the weights
    assert int(student.initialized) == 1
    x, sigma = torch.randn(16, 2, dtype=torch.float64), torch.logspace(-2, 1.5, 16, dtype=torch.float64)
    smin = student.config.sigma_min
    t, x_t = sigma / (1 + sigma), x / (1 + sigma)[:, None]
    with torch.no_grad():
        v = flow.velocity(x_t, t)
        expected = flow.denoise(x, sigma) + smin * x_t + smin / (1 + smin) * v
        assert torch.allclose(student.consistency_fn(x, sigma), expected, atol=1e-12)
    wrong = make(init_from="a-flow-run")  # parametrisation edm
    wrong._source._model = flow
    wrong.train()
    with pytest.raises(ConfigError, match="parametrisation='flow'"):
        wrong.loss({"x": torch.randn(8, 2, dtype=torch.float64)})
    with pytest.raises(ConfigError, match="init_from and model.init_from_teacher"):
        build(ConsistencyConfig, {"init_from": "a", "teacher": "b", "init_from_teacher": True}, "model")


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


def test_sigma_last_sets_the_levels_of_multistep_sampling():
    """`sigma_last` given to sample() overrides the config's: 2 steps evaluate f at sigma_max, then at sigma_last itself; 3 steps
    at sigma_max, the rho-spaced middle level and sigma_last. Outside (sigma_min, sigma_max) it is an error naming the range."""
    model = make()
    seen = []
    model.consistency_fn = lambda x, s, y=None: seen.append(s[0].item()) or exact_f(x, s)
    model.sample(8, steps=2, sigma_last=2.5, generator=torch.Generator().manual_seed(0))
    assert seen == pytest.approx([80.0, 2.5])
    seen.clear()
    model.sample(8, steps=3, sigma_last=0.5, generator=torch.Generator().manual_seed(0))
    middle = ((80.0 ** (1 / 7) + 0.5 ** (1 / 7)) / 2) ** 7  # half-way in sigma^(1 / rho)
    assert seen == pytest.approx([80.0, middle, 0.5])
    seen.clear()
    model.sample(8, steps=2, generator=torch.Generator().manual_seed(0))
    assert seen == pytest.approx([80.0, model.config.sigma_last])
    with pytest.raises(ConfigError, match="sigma_last.*got 90"):
        model.sample(8, steps=2, sigma_last=90.0)


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


@pytest.mark.parametrize("parametrisation", ["edm", "flow"])
def test_consistency_tuning_learns_the_gaussian(parametrisation):
    """ECT's continuous pairs: the gap shrinks stage by stage (logged as `gap`) and the 1-step map moves towards the ODE's."""
    kw = {"levels": "ect", "curriculum_steps": 300, "ect_stages": 4, "parametrisation": parametrisation, **SMALL}
    x = MU + S * torch.randn(256, 2, dtype=torch.float64)
    first = make(**kw).train().loss({"x": x})["gap"].item()  # stage 0: every lower level is sigma_min
    model = make(**kw)
    before = _gap(model)
    _train(model, 300, lr=5e-3)
    last = model.train().loss({"x": x})["gap"].item()  # stage 4: gaps n / 16
    model.eval()
    assert first > 0.9 and last < 0.35, (first, last)
    assert _gap(model) < 0.3 * before, (before, _gap(model))
    samples = model.sample(4000, generator=torch.Generator().manual_seed(3))
    assert (samples.mean(0) - MU).abs().max() < 0.2, samples.mean(0)


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
