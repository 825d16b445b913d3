"""The one likelihood convention, checked on densities known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.metrics import bits_per_dim, likelihood_report
from genlab.spec import DataSpec

SHAPE = (1, 4, 4)
D = 16


def test_uniform_continuous_density_is_8_bits() -> None:
    # Uniform on [-1, 1)^D: density 2^-D, nll = D ln 2 nats on the model's scale.
    spec = DataSpec(shape=SHAPE, encoding="8bit", dequantized=True)
    assert bits_per_dim(D * math.log(2.0), spec) == pytest.approx(8.0, abs=1e-12)


def test_uniform_discrete_distribution_is_8_bits() -> None:
    spec = DataSpec(shape=SHAPE, encoding="8bit", dequantized=False)
    assert bits_per_dim(D * math.log(256.0), spec) == pytest.approx(8.0, abs=1e-12)


def test_factorised_gaussian_dequantised_matches_direct_computation() -> None:
    # A Gaussian N(m, s^2) on the model scale x = y / 128 - 1 is N(128 (m + 1), (128 s)^2) on y in [0, 256).
    g = torch.Generator().manual_seed(0)
    mean, std = 0.3 * torch.randn(D, generator=g, dtype=torch.float64), 0.1 + torch.rand(D, generator=g, dtype=torch.float64)
    x_int = torch.randint(0, 256, (32, D), generator=g).double()
    y = x_int + torch.rand(32, D, generator=g, dtype=torch.float64)
    x = y / 128 - 1
    nll_model = -torch.distributions.Normal(mean, std).log_prob(x).sum(-1)
    nll_direct = -torch.distributions.Normal(128 * (mean + 1), 128 * std).log_prob(y).sum(-1)
    spec = DataSpec(shape=SHAPE, encoding="8bit", dequantized=True)
    torch.testing.assert_close(bits_per_dim(nll_model, spec), nll_direct / (D * math.log(2.0)), rtol=1e-12, atol=1e-12)


def test_binary_and_continuous_are_nats_headlines() -> None:
    for encoding in ("binary", "continuous"):
        spec = DataSpec(shape=(2,), encoding=encoding)
        assert bits_per_dim(2 * math.log(2.0), spec) == pytest.approx(1.0)
        assert "nats per example" in likelihood_report(torch.ones(3), spec, exact=True)["convention"]


def test_likelihood_report_fields() -> None:
    spec = DataSpec(shape=SHAPE, encoding="8bit", dequantized=True)
    nll = torch.tensor([10.0, 12.0, 14.0, 16.0], dtype=torch.float64)
    bound = likelihood_report(nll, spec, exact=False, bound_name="elbo")
    assert bound["nll_bound"] == pytest.approx(13.0) and "nll" not in bound
    assert bound["nll_sem"] == pytest.approx(nll.std().item() / 2)
    assert bound["bits_per_dim"] == pytest.approx((13.0 + D * math.log(128)) / (D * math.log(2)))
    assert (bound["likelihood"], bound["bound"], bound["n"]) == ("bound", "elbo", 4)
    exact = likelihood_report(nll, spec, exact=True)
    assert exact["nll"] == pytest.approx(13.0) and exact["likelihood"] == "exact"
    with pytest.raises(ValueError, match="NaN"):
        likelihood_report(torch.tensor([1.0, float("nan")]), spec, exact=True)


def test_a_long_likelihood_pass_says_how_long_it_will_take(capsys, monkeypatch) -> None:
    """After its first batch, a bound over many examples that will take over a minute says so on stderr (the clock
    is made to jump 1 s per batch: 100 batches -> about 2 min); a short one stays quiet."""
    from genlab.config import DataConfig
    from genlab.data.base import ArrayDataset, BatchTransform
    from genlab.metrics import likelihood

    spec = DataSpec((2,), encoding="continuous")
    ds = ArrayDataset(torch.zeros(200, 2), None, spec, "toy")
    clock = iter(range(0, 10_000))

    class Model:
        device, conditional = torch.device("cpu"), False

        def nll(self, x, y, k):
            return torch.zeros(len(x))

    monkeypatch.setattr(likelihood.time, "perf_counter", lambda: float(next(clock)))
    transform = BatchTransform(spec, DataConfig(name="toy"))
    likelihood.per_example_nll(Model(), ds, transform, k=10, batch_size=2, limit=None, desc="IWAE-10 bound")
    assert "genlab: IWAE-10 bound of 200 examples will take about 2 min" in capsys.readouterr().err
    likelihood.per_example_nll(Model(), ds, transform, k=10, batch_size=2, limit=40, desc="IWAE-10 bound")
    assert "will take" not in capsys.readouterr().err  # 20 batches of 1 s
