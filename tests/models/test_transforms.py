"""Every flow transform in float64: inverse(forward(x)) == x, the log-determinant equals the brute-force
log|det| of the autograd Jacobian, ActNorm's data-dependent initialisation, the spline's edge cases."""

import math

import pytest
import torch

from genlab.models.flow.splines import rq_spline
from genlab.models.flow.transforms import (
    ActNorm,
    AdditiveMap,
    AffineMap,
    Autoregressive,
    BatchNormFlow,
    CheckerboardCoupling,
    Compose,
    ConvConditioner,
    Coupling,
    Logit,
    LUInvertibleLinear,
    MLPConditioner,
    Permutation,
    SplineMap,
    Squeeze,
    UniformDequantization,
    VariationalDequantization,
)

CTX = 3


def mlp(ctx=0):
    return lambda i, o: MLPConditioner(i, o, (16, 16), ctx)


def conv(ctx=0):
    return lambda i, o: ConvConditioner(i, o, 8, ctx)


def batchnorm(shape):
    t = BatchNormFlow(shape[0])
    t.running_mean.normal_()
    t.running_var.uniform_(0.5, 2.0)
    return t


def actnorm(c):
    t = ActNorm(c)
    t.initialized.fill_(1)
    return t


# name -> (factory, example shape, uses a context, input scale)
TRANSFORMS = {
    "affine_coupling": (lambda: Coupling(4, mlp(CTX), AffineMap()), (4,), True, 1.0),
    "affine_coupling_swap": (lambda: Coupling(5, mlp(), AffineMap(), swap=True), (5,), False, 1.0),
    "additive_coupling": (lambda: Coupling(4, mlp(), AdditiveMap()), (4,), False, 1.0),
    "spline_coupling": (lambda: Coupling(4, mlp(CTX), SplineMap(bins=6, bound=2.0)), (4,), True, 1.5),
    "maf": (lambda: Autoregressive(4, AffineMap(), (16, 16), CTX), (4,), True, 1.0),
    "maf_reversed": (lambda: Autoregressive(3, AffineMap(), (16,), 0, torch.tensor([3, 1, 2])), (3,), False, 1.0),
    "spline_autoregressive": (lambda: Autoregressive(3, SplineMap(bins=5, bound=2.0), (16, 16), CTX), (3,), True, 1.5),
    "actnorm_vector": (lambda: actnorm(3), (3,), False, 1.0),
    "actnorm_image": (lambda: actnorm(2), (2, 2, 2), False, 1.0),
    "lu_linear": (lambda: LUInvertibleLinear(4), (4,), False, 1.0),
    "lu_conv1x1": (lambda: LUInvertibleLinear(3), (3, 2, 2), False, 1.0),
    "permutation": (lambda: Permutation(5, "random", torch.Generator().manual_seed(1)), (5,), False, 1.0),
    "squeeze": (Squeeze, (1, 4, 4), False, 1.0),
    "batchnorm_vector": (lambda: batchnorm((3,)), (3,), False, 1.0),
    "batchnorm_image": (lambda: batchnorm((2, 2, 2)), (2, 2, 2), False, 1.0),
    "logit": (lambda: Logit(0.05), (1, 2, 2), False, None),
    "conv_coupling": (lambda: Coupling(2, conv(CTX), AffineMap()), (2, 3, 3), True, 1.0),
    "checkerboard_coupling": (lambda: CheckerboardCoupling(1, conv(), AffineMap(), parity=1), (1, 4, 4), False, 1.0),
    "checkerboard_additive": (lambda: CheckerboardCoupling(2, conv(CTX), AdditiveMap()), (2, 2, 2), True, 1.0),
    "composed": (lambda: Compose([actnorm(4), LUInvertibleLinear(4), Coupling(4, mlp(), SplineMap(4, 3.0))]), (4,), False, 1.0),
}


def build(name):
    factory, shape, uses_ctx, scale = TRANSFORMS[name]
    torch.manual_seed(0)
    t = factory().double().eval()
    with torch.no_grad():  # move every parameter well away from the (near-)identity initialisation
        for pname, p in t.named_parameters():
            if not pname.endswith("log_s"):
                p.add_(0.4 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    if scale is None:  # logit: inputs in (-1, 1)
        x = torch.rand((6, *shape), generator=g, dtype=torch.float64) * 1.98 - 0.99
    else:
        x = scale * torch.randn((6, *shape), generator=g, dtype=torch.float64)
    ctx = torch.randn(6, CTX, generator=g, dtype=torch.float64) if uses_ctx else None
    return t, x, ctx


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_inverse_of_forward_is_identity(name):
    t, x, ctx = build(name)
    with torch.no_grad():
        z, ld = t(x, ctx)
        x2, ld_inv = t.inverse(z, ctx)
    assert z.shape[0] == 6 and ld.shape == (6,)
    assert torch.allclose(x2, x, atol=1e-5, rtol=0), (x2 - x).abs().max()
    assert torch.allclose(ld_inv, -ld, atol=1e-5)
    if name != "squeeze" and name != "permutation":
        assert not torch.allclose(z.reshape(x.shape), x, atol=1e-3), "the test transform should not be the identity"


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_log_det_equals_autograd_jacobian(name):
    t, x, ctx = build(name)
    _, ld = t(x, ctx)
    for i in range(x.shape[0]):
        c = None if ctx is None else ctx[i : i + 1]

        def f(v, c=c):
            return t(v.view(1, *x.shape[1:]), c)[0].flatten()

        J = torch.autograd.functional.jacobian(f, x[i].flatten())
        sign, logabs = torch.linalg.slogdet(J)
        assert sign != 0
        assert torch.allclose(ld[i], logabs, atol=1e-6), (name, i, ld[i].item(), logabs.item())


@pytest.mark.parametrize("shape", [(500, 3), (64, 2, 5, 5)])
def test_actnorm_initialisation_gives_zero_mean_unit_variance(shape):
    torch.manual_seed(0)
    per_channel = torch.arange(1, shape[1] + 1, dtype=torch.float64).view(1, -1, *[1] * (len(shape) - 2))
    x = 3 + 2.5 * torch.randn(shape, dtype=torch.float64) * per_channel
    t = ActNorm(shape[1]).double().train()
    z, _ = t(x)
    dims = [d for d in range(len(shape)) if d != 1]
    assert torch.allclose(z.mean(dims), torch.zeros(shape[1], dtype=torch.float64), atol=1e-10)
    assert torch.allclose(z.std(dims), torch.ones(shape[1], dtype=torch.float64), atol=1e-5)
    assert bool(t.initialized)
    z2, _ = t(x + 100)  # initialised once: a second batch does not re-initialise
    assert torch.allclose(z2, z + 100 * torch.exp(t.log_scale).view(1, -1, *[1] * (len(shape) - 2)))


def test_actnorm_inverse_after_initialisation():
    x = torch.randn(50, 3, dtype=torch.float64) * 4 + 1
    t = ActNorm(3).double().train()
    z, _ = t(x)
    assert torch.allclose(t.inverse(z)[0], x)


def test_spline_knots_are_exact_and_tails_are_identity():
    torch.manual_seed(0)
    raw = torch.randn(1, 3 * 4 - 1, dtype=torch.float64).expand(7, -1)
    x = torch.tensor([-5.0, -2.0, -1.0, 0.0, 1.3, 2.0, 6.0], dtype=torch.float64)
    y, ld = rq_spline(x, raw, bound=2.0)
    assert y[0] == -5.0 and y[-1] == 6.0 and ld[0] == 0 and ld[-1] == 0
    assert torch.allclose(y[1], torch.tensor(-2.0, dtype=torch.float64)) and torch.allclose(y[5], torch.tensor(2.0, dtype=torch.float64))
    assert (y[1:-1].diff() > 0).all()  # monotonic
    x2, ld2 = rq_spline(y, raw, bound=2.0, inverse=True)
    assert torch.allclose(x2, x, atol=1e-10) and torch.allclose(ld2, -ld, atol=1e-10)
    # the derivative at the boundaries is 1, so the spline joins the identity tails smoothly
    eps = 1e-7
    inside = torch.tensor([-2.0 + eps, 2.0 - eps], dtype=torch.float64)
    _, ld_edge = rq_spline(inside, raw[:2], bound=2.0)
    assert torch.allclose(ld_edge, torch.zeros(2, dtype=torch.float64), atol=1e-5)


def test_spline_is_vectorised_over_elements():
    """One call handles (B, D) inputs with per-element parameters, the same as looping over elements."""
    torch.manual_seed(0)
    x, raw = torch.randn(8, 5, dtype=torch.float64) * 2, torch.randn(8, 5, 3 * 6 - 1, dtype=torch.float64)
    y, ld = rq_spline(x, raw, 3.0)
    for i in range(8):
        for d in range(5):
            yi, li = rq_spline(x[i, d : d + 1], raw[i, d : d + 1], 3.0)
            assert torch.allclose(y[i, d], yi[0]) and torch.allclose(ld[i, d], li[0])


def test_uniform_dequantisation_stays_in_the_bin():
    x_int = torch.randint(0, 256, (4, 1, 3, 3)).double()
    x = x_int / 127.5 - 1
    xd, log_q = UniformDequantization()(x, torch.Generator().manual_seed(0))
    y = (xd + 1) * 128  # back to [0, 256)
    assert (y >= x_int).all() and (y < x_int + 1).all() and (log_q == 0).all()


def test_variational_dequantisation_density_matches_change_of_variables():
    """log q(u | x) from the module equals the density of u = sigmoid(mu + sigma eps) computed by brute force."""
    torch.manual_seed(0)
    vd = VariationalDequantization(1, hidden=4).double()
    with torch.no_grad():
        for p in vd.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randint(0, 256, (3, 1, 2, 2)).double() / 127.5 - 1
    xd, log_q = vd(x, torch.Generator().manual_seed(1))
    xi = torch.round((x + 1) * 127.5)
    u = (xd + 1) * 128 - xi
    assert (u > 0).all() and (u < 1).all()
    mu, ls = vd.net(xi / 127.5 - 1).chunk(2, dim=1)
    ls = 3 * torch.tanh(ls / 3)
    eps = (torch.logit(u) - mu) / ls.exp()
    # q(u) = N(eps) |d eps / d u| with d eps / d u = 1 / (sigma u (1 - u))
    ref = (-0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - ls - torch.log(u * (1 - u))).flatten(1).sum(1)
    assert torch.allclose(log_q, ref, atol=1e-8)


def test_squeeze_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        Squeeze()(torch.zeros(1, 1, 7, 7))


def test_coupling_needs_two_features():
    with pytest.raises(ValueError, match="at least 2"):
        Coupling(1, mlp(), AffineMap())
