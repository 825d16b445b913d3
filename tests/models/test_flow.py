"""Flow models: whole-flow invertibility and Jacobians (every model's contract cases, float64), a trained toy flow's
density integrates to 1, samples and log_prob agree with the entropy, temperature, genlab's likelihood convention,
bad input and numerical failures."""

import math

import pytest
import torch

import genlab
from genlab import checkpoint as ckpt
from genlab import registry
from genlab.config import build
from genlab.errors import ConfigError, TrainingError
from genlab.models import build_model
from genlab.models.flow.density import log_density_grid
from genlab.models.flow.nsf import NSF
from genlab.spec import DataSpec

FLOWS = ["realnvp", "maf", "nsf", "glow"]
CASES = [pytest.param(n, i, id=f"{n}-{i}") for n in FLOWS for i in range(len(registry.model(n)[1].contract_cases()))]
TOY = DataSpec((2,), encoding="continuous")


def make(name, overrides, spec, dtype=torch.float64):
    cfg_cls, _ = registry.model(name)
    torch.manual_seed(0)
    return build_model(build(cfg_cls, {"name": name, **overrides}, "model"), spec).to(dtype)


def perturbed(name, i):
    """A contract-case flow in float64 with its ActNorms initialised on data and every weight moved off its
    near-identity start, so the checks see a non-trivial map."""
    overrides, spec = registry.model(name)[1].contract_cases()[i]
    m = make(name, overrides, spec)
    g = torch.Generator().manual_seed(3)
    if spec.is_image:
        x = torch.rand((5, *spec.shape), generator=g, dtype=torch.float64) * 1.9 - 0.95
    else:
        x = torch.randn((5, *spec.shape), generator=g, dtype=torch.float64)
    y = torch.arange(5) % spec.num_classes if m.conditional else None
    m.train()
    m.log_prob_continuous(x, y)  # data-dependent initialisation
    m.eval()
    with torch.no_grad():
        for pname, p in m.named_parameters():
            if "dequantizer" not in pname:
                p.add_((0.05 if spec.is_image else 0.3) * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m, x, y


@pytest.mark.parametrize("name, i", CASES)
def test_flow_round_trip_and_log_det_against_autograd(name, i):
    m, x, y = perturbed(name, i)
    ctx = m._context(m.class_labels(y, len(x)), x)
    with torch.no_grad():
        z, ld = m.flow(x, ctx)
        x2, ld_inv = m.flow.inverse(z, ctx)
    assert torch.allclose(x2.view_as(x), x, atol=1e-5, rtol=0)
    assert torch.allclose(ld_inv, -ld, atol=1e-5)
    for k in range(1 if x.dim() == 4 else 2):  # image Jacobians are 48-192 backward passes each
        c = None if ctx is None else ctx[k : k + 1]
        J = torch.autograd.functional.jacobian(lambda v, c=c: m.flow(v.view(1, *x.shape[1:]), c)[0].flatten(), x[k].flatten())
        assert torch.allclose(ld[k], torch.linalg.slogdet(J)[1], atol=1e-6)
    # log_prob = log N(z) (+ class-conditional base) + log|det|, on the data's own scale
    lp = m.log_prob_continuous(x, y)
    base = m._base(m.class_labels(y, len(x)), z)
    if base is None:
        ref = -0.5 * (z**2 + math.log(2 * math.pi)).sum(1) + ld
    else:
        ref = (-0.5 * ((z - base[0]) / base[1].exp()) ** 2 - base[1] - 0.5 * math.log(2 * math.pi)).sum(1) + ld
    assert torch.allclose(lp, ref, atol=1e-8)


def train_toy(name, steps=200, **overrides):
    from genlab.data.toy2d import toy_distribution

    m = make(name, overrides, TOY, torch.float32)
    data = toy_distribution("moons").sample(20_000, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    m.train()
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (256,), generator=g)]
        loss = m.loss({"x": batch})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval().double(), data


@pytest.fixture(scope="module")
def trained():
    return {
        "realnvp": train_toy("realnvp", layers=6, hidden=[64, 64], norm="none"),
        "maf": train_toy("maf", layers=4, hidden=[64, 64]),
        "nsf": train_toy("nsf", layers=3, hidden=[64, 64], bins=8),
        "nsf_ar": train_toy("nsf", layers=2, hidden=[64, 64], variant="autoregressive"),
    }


@pytest.mark.parametrize("name", ["realnvp", "maf", "nsf", "nsf_ar"])
def test_trained_toy_density_integrates_to_one(trained, name):
    m, data = trained[name]
    logp, area = log_density_grid(lambda p: m.log_prob(p.double()), lim=7.0, n=280)
    mass = (logp.double().exp() * area).sum().item()
    assert abs(mass - 1) < 0.02, mass
    # and it learned something: held-out NLL well below a Gaussian fit's (moons: 2.40 nats entropy)
    assert -m.log_prob(data[:2000].double()).mean().item() < 3.0


@pytest.mark.parametrize("name", ["realnvp", "maf", "nsf", "nsf_ar"])
def test_samples_agree_with_log_prob_and_entropy(trained, name):
    m, _ = trained[name]
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        z = torch.randn(10_000, 2, generator=g, dtype=torch.float64)
        x, ld_inv = m.flow.inverse(z)
        # the sampling path's density, log N(z) - log|det dx/dz|, is the density log_prob computes at the sample
        lp_sampling = -0.5 * (z**2 + math.log(2 * math.pi)).sum(1) - ld_inv
        lp = m.log_prob(x)
    assert torch.allclose(lp, lp_sampling, atol=1e-6)
    # samples' mean -log p is the flow's entropy; compare with -sum p log p over a grid
    logp, area = log_density_grid(lambda p: m.log_prob(p.double()), lim=7.0, n=280)
    p = logp.double().exp()
    h_grid = -(p * logp.double() * area).sum().item()
    h_samples = -lp.mean().item()
    sem = lp.std().item() / math.sqrt(len(lp))
    assert abs(h_samples - h_grid) < 4 * sem + 0.02, (h_samples, h_grid, sem)
    # sample() draws the same distribution: its samples have the same mean log-density
    xs = m.sample(10_000, generator=torch.Generator().manual_seed(6))
    assert abs(-m.log_prob(xs).mean().item() - h_samples) < 6 * sem


def test_temperature_scales_the_spread(trained):
    m, _ = trained["nsf"]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    cold, warm = m.sample(4000, generator=g(), temperature=0.5), m.sample(4000, generator=g(), temperature=1.0)
    assert cold.std(0).sum() < warm.std(0).sum()
    frozen = m.sample(5, generator=g(), temperature=0.0)
    assert torch.allclose(frozen, frozen[:1].expand(5, -1))
    with pytest.raises(ConfigError, match="temperature"):
        m.sample(2, top_k=3)


def test_image_likelihood_convention_and_dequantisation_bound():
    """8-bit data the flow dequantises itself: nll_bound = -log p(x_deq) + D ln 128 + log q; a flat density on
    [-1, 1)^D (the identity-initialised Logit-free Glow is not flat, so check the arithmetic directly)."""
    spec = DataSpec((1, 4, 4), encoding="8bit")
    m = make("glow", {"steps": 1, "channels": 4, "levels": 1}, spec).eval()
    assert m.likelihood == "bound"
    x = torch.randint(0, 256, (3, 1, 4, 4)).double() / 127.5 - 1
    torch.manual_seed(1)
    nll = m.nll_bound(x)
    torch.manual_seed(1)
    xd, log_q = m._dequantize(x)
    assert torch.allclose(nll, -m.log_prob_continuous(xd) + 16 * math.log(128) + log_q)
    with pytest.raises(NotImplementedError, match="bound"):
        m.log_prob(x)
    exact = make("glow", {"steps": 1, "channels": 4, "levels": 1}, DataSpec((1, 4, 4), encoding="8bit", dequantized=True))
    assert exact.likelihood == "exact" and exact.dequantizer is None


def test_logit_preprocessing_jacobian_is_in_log_prob():
    """With logit pre-processing the density stays on the [-1, 1) scale: the Jacobian of the logit is included."""
    spec = DataSpec((1, 2, 2), encoding="8bit", dequantized=True)
    with_logit = make("realnvp", {"steps": 1, "channels": 4, "levels": 1, "preprocess": "logit", "norm": "none"}, spec).eval()
    x = torch.rand(4, 1, 2, 2, dtype=torch.float64) * 1.9 - 0.95
    J = torch.autograd.functional.jacobian(lambda v: with_logit.flow(v.view(1, 1, 2, 2))[0].flatten(), x[0].flatten())
    z, _ = with_logit.flow(x[:1])
    ref = -0.5 * (z**2 + math.log(2 * math.pi)).sum() + torch.linalg.slogdet(J)[1]
    assert torch.allclose(with_logit.log_prob(x[:1])[0], ref)


# ------------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "name, overrides, spec, match",
    [
        ("glow", {"levels": 1}, DataSpec((1, 7, 7)), "squeeze"),
        ("glow", {"levels": 3}, DataSpec((1, 28, 28)), "model.levels=3"),
        ("realnvp", {"levels": 0}, DataSpec((3, 15, 15)), "cannot be squeezed"),
        ("glow", {}, TOY, "images"),
        ("maf", {}, DataSpec((1, 8, 8)), "vectors"),
        ("realnvp", {}, DataSpec((1,), encoding="continuous"), "at least 2"),
        ("nsf", {"variant": "coupling"}, DataSpec((1,), encoding="continuous"), "at least 2"),
        ("realnvp", {}, DataSpec((1, 8, 8), encoding="binary"), "binarize"),
        ("glow", {"dequantization": "variational"}, DataSpec((1, 8, 8), dequantized=True), "data.dequantize=false"),
        ("nsf", {"conditional": True}, TOY, "labels"),
    ],
)
def test_bad_configurations_fail_before_training(name, overrides, spec, match):
    with pytest.raises(ConfigError, match=match):
        make(name, overrides, spec)


@pytest.mark.parametrize("name, overrides, match", [("maf", {"hidden": []}, "hidden layer"), ("realnvp", {"clamp": 0}, "clamp")])
def test_non_invertible_config_values_are_rejected(name, overrides, match):
    with pytest.raises(ConfigError, match=match):
        make(name, overrides, TOY)


def test_spline_bound_the_data_exceed_is_an_error_at_the_first_batch():
    m = make("nsf", {"bound": 2.0, "layers": 1, "hidden": [8]}, TOY, torch.float32).train()
    with pytest.raises(ConfigError, match="model.bound=2.0"):
        m.loss({"x": torch.tensor([[0.5, 3.5], [0.0, 0.0]])})


def test_spline_starts_at_the_identity_and_its_slopes_live_in_log_space():
    """Zero network outputs give exactly the identity (equal bins, all knot slopes 1); a knot slope is exp(u) near
    u = 0 (d log d / du = 1, so the log-determinant's gradient does not fade for steep bins) and stays within
    (MIN_DERIVATIVE, 1 / MIN_DERIVATIVE) for any output."""
    from genlab.models.flow.splines import MIN_DERIVATIVE, rq_spline, spline_params

    x = torch.linspace(-6, 6, 101, dtype=torch.float64)
    y, ld = rq_spline(x, torch.zeros(101, 3 * 16 - 1, dtype=torch.float64), 5.0)
    assert torch.allclose(y, x, atol=1e-12, rtol=0) and ld.abs().max() < 1e-12
    u = torch.tensor([-1e4, -10.0, -1.0, 0.0, 1.0, 10.0, 1e4], dtype=torch.float64, requires_grad=True)
    raw = torch.cat([torch.zeros(7, 8, dtype=torch.float64), u[:, None], torch.zeros(7, 2, dtype=torch.float64)], 1)  # K = 4
    slope = spline_params(raw, 2.0)[2][:, 1]  # the first interior knot's derivative
    assert (slope > MIN_DERIVATIVE).all() and (slope < 1 / MIN_DERIVATIVE).all() and (slope.diff() > 0).all()
    assert slope[3] == 1 and 2.2 < slope[4] < math.e and 1 / math.e < slope[2] < 0.45
    (grad,) = torch.autograd.grad(slope.log().sum(), u)
    assert grad[3] == 1 and (grad[2:5] > 0.7).all()


def test_nan_log_det_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = NSF.log_prob_continuous

    def flaky(self, x, y=None):
        lp = original(self, x, y)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 12:
                return lp * float("nan")
        return lp

    monkeypatch.setattr(NSF, "log_prob_continuous", flaky)
    cfg = {
        "data": {"name": "moons", "n_train": 512, "n_test": 128},
        "model": {"name": "nsf", "layers": 1, "hidden": [8], "bins": 4},
        "train": {"batch_size": 64, "max_steps": 30, "ckpt_every": 5, "progress": False, "log_every": 5},
        "eval": {"batch_size": 64},
    }
    with pytest.raises(TrainingError, match="non-finite loss at step 13.*step 10"):
        genlab.train(cfg, run_dir=tmp_path / "run")
    assert int(ckpt.read_metadata(tmp_path / "run" / "model.safetensors")["step"]) == 10


def test_trains_from_the_api_and_evaluates_exactly(tmp_path):
    cfg = {
        "data": {"name": "moons", "n_train": 2048, "n_test": 512},
        "model": {"name": "realnvp", "layers": 4, "hidden": [32]},
        "train": {"batch_size": 128, "max_steps": 60, "progress": False, "lr": 3e-3},
        "eval": {"batch_size": 256, "sample_metrics": False},
    }
    genlab.train(cfg, run_dir=tmp_path / "run")
    out = genlab.evaluate(tmp_path / "run")
    assert out["likelihood"] == "exact" and math.isfinite(out["nll"])
    assert (tmp_path / "run" / "samples" / "density.png").is_file()


@pytest.mark.parametrize("name", ["glow", "realnvp"])
@pytest.mark.parametrize("shape, levels", [((1, 28, 28), 2), ((3, 32, 32), 3)])
def test_image_flows_pick_their_levels_for_28_and_32_px(name, shape, levels):
    spec = DataSpec(shape, num_classes=10, dequantized=True)
    overrides = {"steps": 1, "channels": 4, "conditional": True}
    m = make(name, overrides, spec, torch.float32).eval()
    ms = m.flow.transforms[-1]
    assert len(ms.levels) == levels and sum(math.prod(s) for s in ms.shapes) == spec.dim
    y = torch.arange(3)
    x = m.sample(3, labels=y, generator=torch.Generator().manual_seed(0), temperature=0.7)
    assert x.shape == (3, *shape) and torch.isfinite(m.log_prob(x, y)).all()


CONDITIONAL = [("maf", {}), ("nsf", {}), ("realnvp", {"norm": "none"}), ("nsf", {"variant": "autoregressive"})]


@pytest.mark.parametrize("name, overrides", CONDITIONAL)
def test_conditional_flow_learns_class_dependent_densities_through_the_context(name, overrides):
    """Two classes at (-2, -2) and (2, 2): with the class entering only the nets (a context vector), the flow puts
    each class's samples at its own centre and scores the right label higher."""
    spec = DataSpec((2,), num_classes=2, encoding="continuous")
    m = make(name, {"layers": 2, "hidden": [16], "conditional": True, "condition": "coupling", **overrides}, spec, torch.float32)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(100):
        y = torch.randint(0, 2, (128,), generator=g)
        x = (4.0 * y - 2).view(-1, 1) + 0.3 * torch.randn(128, 2, generator=g)
        loss = m.loss({"x": x, "y": y})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    for c, centre in ((0, -2.0), (1, 2.0)):
        s = m.sample(500, labels=torch.full((500,), c), generator=torch.Generator().manual_seed(1))
        assert torch.allclose(s.mean(0), torch.full((2,), centre), atol=0.3), (c, s.mean(0))
    x = torch.tensor([[2.0, 2.0]])
    assert m.log_prob(x, torch.tensor([1])) > m.log_prob(x, torch.tensor([0])) + 5
