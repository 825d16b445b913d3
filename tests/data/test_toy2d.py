import functools
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.toy2d import TOY_NAMES, NoisyCurves, Pinwheel, toy_distribution
from genlab.errors import ConfigError

BOX = 5.0  # every distribution keeps all but a negligible mass inside [-5, 5]^2
GRID_STEP = {"8gaussians": 0.02, "25gaussians": 0.05}  # <= the std: Riemann sums of Gaussians are then exact to ~1e-9


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@functools.cache
def grid_density(name: str) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(h, cell centres, p at them) on the h-grid over [-BOX, BOX]^2 (h = 0.1 unless the modes are narrower)."""
    h = GRID_STEP.get(name, 0.1)
    ax = torch.arange(-BOX + h / 2, BOX, h, dtype=torch.float64)
    pts = torch.cartesian_prod(ax, ax)
    return h, pts, toy_distribution(name).log_prob(pts).exp()


@pytest.mark.parametrize("name", TOY_NAMES)
def test_sample_is_deterministic_float32_and_near_origin(name):
    d = toy_distribution(name)
    a, b = d.sample(500, gen(1)), d.sample(500, gen(1))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, d.sample(500, gen(2)))
    assert a.abs().max() < BOX


@pytest.mark.parametrize("name", TOY_NAMES)
def test_log_prob_integrates_to_one(name):
    h, _, p = grid_density(name)
    assert p.sum().item() * h * h == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("name", TOY_NAMES)
def test_samples_follow_the_density(name):
    """Histogram of 20,000 samples in 0.5-wide bins vs the density's mass in each bin: total variation is sampling noise."""
    h, pts, p = grid_density(name)
    x = toy_distribution(name).sample(20_000, gen(3)).double()
    bins = int(2 * BOX / 0.5)

    def bin_index(z):
        ij = ((z + BOX) / 0.5).floor().long().clamp(0, bins - 1)
        return ij[:, 0] * bins + ij[:, 1]

    expected = torch.zeros(bins * bins, dtype=torch.float64).index_add(0, bin_index(pts), p * h * h)
    observed = torch.bincount(bin_index(x), minlength=bins * bins).double() / len(x)
    assert 0.5 * (observed - expected).abs().sum().item() < 0.05


@pytest.mark.parametrize("name", TOY_NAMES)
def test_log_prob_is_finite_on_samples_and_matches_float32(name):
    d = toy_distribution(name)
    x = d.sample(2000, gen(4))
    lp64, lp32 = d.log_prob(x.double()), d.log_prob(x)
    assert lp64.shape == (2000,) and lp32.dtype == torch.float32
    assert torch.isfinite(lp64).all()
    torch.testing.assert_close(lp32.double(), lp64, atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in TOY_NAMES if n != "checkerboard"])
def test_log_prob_gradient_matches_finite_differences(name):
    d = toy_distribution(name)
    x = d.sample(4, gen(5)).double().requires_grad_()
    assert torch.autograd.gradcheck(d.log_prob, (x,), atol=1e-5)


@pytest.mark.parametrize("name,k", [("8gaussians", 8), ("25gaussians", 25)])
def test_gaussian_mixture_matches_brute_force_scipy(name, k):
    d = toy_distribution(name)
    centres, std = d.centres.numpy(), d.std
    x = np.concatenate([d.sample(200, gen(6)).double().numpy(), np.random.default_rng(0).uniform(-3, 3, (50, 2))])
    dens = sum(multivariate_normal(c, std**2 * np.eye(2)).pdf(x) for c in centres) / k
    near = dens > 1e-300  # scipy's densities underflow where ours stays in log space
    np.testing.assert_allclose(d.log_prob(torch.from_numpy(x)).numpy()[near], np.log(dens[near]), rtol=1e-9, atol=1e-9)


def test_gaussian_mixture_layouts_and_modes():
    ring = toy_distribution("8gaussians")
    torch.testing.assert_close(ring.centres.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    assert ring.std == 0.02
    grid = toy_distribution("25gaussians")
    assert sorted({v for c in grid.centres.tolist() for v in c}) == [-4.0, -2.0, 0.0, 2.0, 4.0] and grid.std == 0.05
    for d in (ring, grid):
        x = d.sample(2000, gen(7)).double()
        dist = torch.cdist(x, d.centres)
        assert (dist.min(1).values < 5 * d.std).all()  # every sample within 5 std of a centre
        assert len(dist.argmin(1).unique()) == len(d.centres)  # every mode hit


def test_checkerboard_samples_lie_on_black_squares():
    d = toy_distribution("checkerboard")
    x = d.sample(20_000, gen(8))
    ij = ((x + 4) / 2).floor()
    assert ((ij >= 0) & (ij <= 3)).all() and ((ij.sum(1) % 2) == 0).all()
    assert len((ij[:, 0] * 4 + ij[:, 1]).unique()) == 8
    assert (d.log_prob(x) == -math.log(32)).all()
    white = torch.tensor([[-3.0, -1.0], [1.0, 3.0], [-1.0, 0.5], [4.5, 0.0]])
    assert (d.log_prob(white) == -math.inf).all()
    assert d.entropy() == math.log(32)


@pytest.mark.parametrize("name", ["moons", "circles", "swissroll", "2spirals"])
def test_curve_quadrature_is_converged(name):
    """The default quadrature agrees with a 4x finer one, on samples and a little way off the data."""
    d = toy_distribution(name)
    fine = NoisyCurves(name, d.curves, d.std, n_quad=4 * d.n_quad, warp_power=d.warp_power)
    x = d.sample(300, gen(9)).double()
    x = torch.cat([x, x + 3 * d.std * torch.randn(x.shape, generator=gen(10), dtype=torch.float64)])
    torch.testing.assert_close(d.log_prob(x), fine.log_prob(x), atol=1e-6, rtol=0)


def test_pinwheel_roots_match_a_brute_force_grid_even_where_psi_folds():
    """psi folds out in the tails (|x| > ~3): the 128-angle search must find what a 4096-angle one does."""
    d = toy_distribution("pinwheel")
    x = torch.rand(300, 2, generator=gen(11), dtype=torch.float64) * 16 - 8
    brute = Pinwheel(n_grid=4096, n_bisect=50, n_newton=0, max_roots=100).log_prob(x)
    torch.testing.assert_close(d.log_prob(x), brute, atol=1e-8, rtol=0)
    assert torch.isfinite(d.log_prob(torch.tensor([[40.0, 3.0], [0.0, 0.0], [-1e3, 1.0]]))).all()


def test_entropy_of_separated_mixtures_is_log_k_plus_gaussian_entropy():
    for name, k in (("8gaussians", 8), ("25gaussians", 25)):
        d = toy_distribution(name)
        exact = math.log(k) + math.log(2 * math.pi * math.e * d.std**2)
        assert d.entropy(n=5000) == pytest.approx(exact, abs=0.05)
        assert d.entropy(n=5000, seed=1) == d.entropy(n=5000, seed=1)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ConfigError, match="8gaussians"):
        toy_distribution("8gaussian")


def test_log_prob_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        toy_distribution("moons").log_prob(torch.zeros(3, 3))


def test_dataset_builder_draws_per_split_seeded_points():
    cfg = DataConfig(name="pinwheel", n_train=300, n_test=100, seed=3)
    train, transform = load_dataset(cfg, "train")
    test, _ = load_dataset(cfg, "test")
    assert train.x.shape == (300, 2) and test.x.shape == (100, 2) and train.y is None
    assert train.spec.encoding == "continuous" and train.spec.shape == (2,)
    assert not transform.random and torch.equal(transform(train.x[:5]), train.x[:5])
    assert not torch.equal(train.x[:100], test.x)
    assert torch.equal(load_dataset(cfg, "train")[0].x, train.x)
    other = load_dataset(DataConfig(name="pinwheel", n_train=300, seed=4), "train")[0]
    assert not torch.equal(other.x, train.x)
    assert len(load_dataset(DataConfig(name="moons"), "test")[0]) == 10_000
