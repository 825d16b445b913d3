"""VAE: the ELBO and IWAE bounds against the exact marginal likelihood of a linear-Gaussian model, sampling
determinism, class conditioning, and config/spec validation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import MultivariateNormal

from genlab.config import DataConfig, EvalConfig, TrainConfig, build, load_toml
from genlab.errors import ConfigError
from genlab.models.vae.vae import VAE, VAEConfig, slerp
from genlab.registry import model as registry_model
from genlab.spec import DataSpec

PRESETS = sorted((Path(__file__).parents[2] / "configs" / "vae").glob("*.toml"))

BINARY = DataSpec((1, 8, 8), num_classes=3, encoding="binary")
EIGHT_BIT = DataSpec((1, 8, 8), num_classes=3, encoding="8bit")
DEQUANT = DataSpec((1, 8, 8), num_classes=3, encoding="8bit", dequantized=True)
VECTORS = DataSpec((2,), encoding="continuous")
TINY = {"latent_dim": 4, "channels": (8, 8)}


def _images(spec: DataSpec, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x_int = torch.randint(0, 256, (n, *spec.shape), generator=g)
    if spec.encoding == "binary":
        return torch.where(x_int > 127, 1.0, -1.0)
    if spec.dequantized:
        return (x_int + torch.rand(x_int.shape, generator=g)) / 128 - 1
    return x_int / 127.5 - 1


def test_registered_as_vae():
    assert registry_model("vae") == (VAEConfig, VAE)
    assert VAE.family == "vae" and VAE.likelihood == "bound"


@torch.no_grad()
def _linear_gaussian_vae() -> tuple[VAE, MultivariateNormal, torch.Tensor]:
    """p(z) = N(0, I), p(x|z) = N(W z + b, Psi) (factor analysis), so p(x) = N(b, W W^T + Psi) exactly.

    The encoder gives the true posterior mean m(x) = Sigma W^T Psi^-1 (x - b) with only the diagonal of the
    posterior covariance Sigma = (I + W^T Psi^-1 W)^-1, so the ELBO's gap KL(q || p(z|x)) is known too.
    """
    W = torch.tensor([[1.5, 1.0], [1.0, 1.5], [0.5, -0.3]], dtype=torch.float64)  # (D, d)
    b = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    psi_sqrt = torch.tensor([0.5, 0.4, 0.3], dtype=torch.float64)
    Psi_inv = torch.diag(psi_sqrt**-2)
    Sigma = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + W.T @ Psi_inv @ W)
    A = Sigma @ W.T @ Psi_inv  # (d, D)

    cfg = VAEConfig(latent_dim=2, net="mlp", hidden=(), norm=False, decoder="gaussian", scale="channel")
    vae = VAE(cfg, DataSpec((3,), encoding="continuous")).double()
    enc, dec = vae.encoder[0], vae.decoder[0]  # hidden=() makes each a single nn.Linear
    enc.weight.copy_(torch.cat([A, torch.zeros(2, 3, dtype=torch.float64)]))  # mu = A (x - b), logvar constant
    enc.bias.copy_(torch.cat([-A @ b, torch.diag(Sigma).log()]))
    dec.weight.copy_(W)
    dec.bias.copy_(b)
    vae.head.log_scale.copy_(psi_sqrt.log())

    marginal = MultivariateNormal(b, W @ W.T + torch.diag(psi_sqrt**2))
    S_q = torch.diag(torch.diag(Sigma))
    gap = 0.5 * (torch.trace(torch.linalg.inv(Sigma) @ S_q) - 2 + torch.logdet(Sigma) - torch.logdet(S_q))
    return vae, marginal, gap


def test_elbo_and_iwae_against_exact_marginal_likelihood():
    vae, marginal, gap = _linear_gaussian_vae()
    x = torch.tensor([[0.5, -1.0, 0.2], [2.0, 1.5, 0.6], [-1.0, 0.3, -0.4]], dtype=torch.float64)
    reps = 2000  # each point repeated: the mean over repeats is a precise estimate of the expected bound
    xs = x.repeat_interleave(reps, dim=0)
    exact = -marginal.log_prob(x)  # (3,) -log p(x)
    g = torch.Generator().manual_seed(0)
    ks = (1, 4, 32, 256)
    nll = {k: vae.nll_bound(xs, k=k, generator=g).view(3, reps) for k in ks}
    means = {k: v.mean(1) for k, v in nll.items()}
    sem = {k: v.std(1) / math.sqrt(reps) for k, v in nll.items()}
    for k in ks:
        assert (means[k] >= exact - 4 * sem[k]).all(), f"IWAE-{k} is below the exact NLL"
    # -ELBO = -log p(x) + KL(q(z|x) || p(z|x)), and that gap is known in closed form.
    torch.testing.assert_close(means[1], exact + gap, atol=float(4 * sem[1].max()), rtol=0)
    assert (means[1] - exact > 0.5).all()  # a real gap to close
    for k_lo, k_hi in itertools.pairwise(ks):
        assert (means[k_hi] <= means[k_lo] + 4 * sem[k_hi]).all(), f"IWAE-{k_hi} is looser than IWAE-{k_lo}"
    assert (means[4] < means[1] - 0.2).all()
    torch.testing.assert_close(means[256], exact, atol=0.01, rtol=0)


def test_loss_matches_the_elbo_with_beta_and_warmup():
    vae, marginal, gap = _linear_gaussian_vae()
    x = torch.tensor([[0.5, -1.0, 0.2]], dtype=torch.float64).repeat(100_000, 1)
    torch.manual_seed(0)
    out = vae.loss({"x": x})
    torch.testing.assert_close(out["nll_bound"], -marginal.log_prob(x[0]) + gap, atol=0.05, rtol=0)
    torch.testing.assert_close(out["loss"], out["nll_bound"])

    beta = VAE(VAEConfig(beta=0.5, **TINY), BINARY)
    out = beta.loss({"x": _images(BINARY)})
    torch.testing.assert_close(out["loss"], out["recon"] + 0.5 * out["kl"])
    torch.testing.assert_close(out["nll_bound"], out["recon"] + out["kl"])  # the bound always has beta = 1

    warm = VAE(VAEConfig(kl_warmup_steps=4, **TINY), BINARY).train()
    xb = _images(BINARY)
    first = warm.loss({"x": xb})
    torch.testing.assert_close(first["loss"], first["recon"])  # KL weight 0 at the first batch
    assert int(warm.kl_step) == 1


def test_free_bits_charge_at_least_the_floor():
    vae = VAE(VAEConfig(free_bits=10.0, **TINY), BINARY)
    out = vae.loss({"x": _images(BINARY)})
    assert out["kl"] < 10.0 * 4  # an untrained encoder is far below 10 nats per latent ...
    torch.testing.assert_close(out["loss"], out["recon"] + 10.0 * 4)  # ... so each is charged the floor


@pytest.mark.parametrize(
    "spec, overrides, decoder",
    [
        (BINARY, {}, "bernoulli"),
        (EIGHT_BIT, {}, "logistic"),
        (EIGHT_BIT, {"decoder": "logistic_mixture", "n_mix": 3, "upsample": "nearest", "blocks": 1}, "logistic_mixture"),
        (DEQUANT, {"scale": "channel"}, "gaussian"),
        (EIGHT_BIT, {"net": "mlp", "hidden": (16,), "conditional": True}, "logistic"),
        (VECTORS, {"hidden": (16, 16)}, "gaussian"),
    ],
)
def test_every_head_trains_and_bounds(spec, overrides, decoder):
    vae = VAE(VAEConfig(**{**TINY, **overrides}), spec)
    assert vae.decoder_kind == decoder
    x, y = _images(spec) if spec.is_image else torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    out = vae.loss({"x": x, "y": y})
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.parameters()), "a parameter gets no gradient"
    nll = vae.nll_bound(x, y, k=3)
    assert nll.shape == (6,) and torch.isfinite(nll).all()
    labels = y if vae.conditional else None
    for mean in (True, False):
        s = vae.sample(6, labels=labels, mean=mean, generator=torch.Generator().manual_seed(0))
        assert s.shape == (6, *spec.shape)
        if spec.is_image:
            assert s.min() >= -1 and s.max() <= 1
    assert vae.reconstruct(x, y).shape == x.shape


def test_sampling_is_deterministic_under_a_generator():
    vae = VAE(VAEConfig(**TINY), EIGHT_BIT)
    for mean in (True, False):
        a = vae.sample(5, generator=torch.Generator().manual_seed(3), mean=mean)
        b = vae.sample(5, generator=torch.Generator().manual_seed(3), mean=mean)
        c = vae.sample(5, generator=torch.Generator().manual_seed(4), mean=mean)
        assert torch.equal(a, b) and not torch.equal(a, c)
    x = _images(EIGHT_BIT)
    assert torch.equal(
        vae.nll_bound(x, k=2, generator=torch.Generator().manual_seed(0)), vae.nll_bound(x, k=2, generator=torch.Generator().manual_seed(0))
    )


def test_conditional_vae_needs_labels_and_unconditional_refuses_them():
    cvae = VAE(VAEConfig(conditional=True, **TINY), BINARY)
    x, y = _images(BINARY, 3), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        cvae.sample(3)
    with pytest.raises(ValueError, match="labels"):
        cvae.loss({"x": x})
    with pytest.raises(ValueError, match="3 labels"):
        cvae.sample(3, labels=torch.tensor([0, 1]))
    assert cvae.sample(3, labels=y).shape == (3, 1, 8, 8)
    assert torch.equal(cvae.sample_labels(4), torch.tensor([0, 1, 2, 0]))
    # The label changes the decoder's output for the same z.
    z = torch.randn(1, 4).repeat(3, 1)
    assert not torch.allclose(cvae.decode(z, y)[0][0], cvae.decode(z, y)[0][1])

    vae = VAE(VAEConfig(**TINY), BINARY)
    with pytest.raises(ValueError, match="not class-conditional"):
        vae.sample(3, labels=y)
    vae.loss({"x": x, "y": y})  # a labelled batch is fine: the labels are not used


def test_interpolation_ends_at_the_reconstructions():
    vae = VAE(VAEConfig(**TINY), EIGHT_BIT)
    x0, x1 = _images(EIGHT_BIT, 4).chunk(2)
    for spherical in (True, False):
        path = vae.interpolate(x0, x1, steps=5, spherical=spherical)
        assert path.shape == (2, 5, 1, 8, 8)
        torch.testing.assert_close(path[:, 0], vae.reconstruct(x0))
        torch.testing.assert_close(path[:, -1], vae.reconstruct(x1))


def test_slerp_keeps_the_norm_between_equal_norm_points():
    z0, z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [0.0, 2.0]])
    z = slerp(z0, z1, torch.linspace(0, 1, 7))  # (2, 7, 2); the second pair is parallel -> linear
    torch.testing.assert_close(z[0].norm(dim=-1), torch.ones(7))
    torch.testing.assert_close(z[1], z1[1].expand(7, 2))


@pytest.mark.parametrize(
    "spec, overrides, key, advice",
    [
        (EIGHT_BIT, {"decoder": "bernoulli"}, "model.decoder", "data.binarize=true"),
        (DEQUANT, {"decoder": "logistic"}, "model.decoder", "data.dequantize=false"),
        (DEQUANT, {"decoder": "logistic_mixture"}, "model.decoder", "data.dequantize=false"),
        (EIGHT_BIT, {"decoder": "gaussian"}, "model.decoder", "data.dequantize=true"),
        (BINARY, {"decoder": "gaussian"}, "model.decoder", "bernoulli"),
        (VECTORS, {"decoder": "logistic"}, "model.decoder", "auto"),
        (VECTORS, {"net": "conv"}, "model.net", "mlp"),
        (DataSpec((1, 28, 28)), {"channels": (32, 64, 128)}, "model.channels", "at most 2"),
        (DataSpec((1, 28, 28)), {"channels": ()}, "model.channels", "at least one level"),
        (DataSpec((1, 28, 28)), {"conditional": True}, "model.conditional", "model.conditional=false"),
    ],
)
def test_config_that_does_not_fit_the_data_is_refused(spec, overrides, key, advice):
    with pytest.raises(ConfigError, match=key) as e:
        VAE(VAEConfig(**{**TINY, **overrides}), spec)
    assert advice in str(e.value)


def test_28_pixel_images_need_no_padding():
    vae = VAE(VAEConfig(), DataSpec((1, 28, 28)))
    assert vae.sample(2).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_presets_are_valid_configs(path):
    raw = load_toml(path)
    assert set(raw) <= {"data", "model", "train", "eval"}
    data = build(DataConfig, raw["data"], "data")
    model = build(VAEConfig, raw["model"], "model")
    build(TrainConfig, raw["train"], "train")
    build(EvalConfig, raw.get("eval", {}), "eval")
    assert model.name == "vae"
    assert data.name


def test_presets_exist():
    assert {p.name for p in PRESETS} >= {
        "vae_fmnist.toml",
        "vae_binarized_fmnist.toml",
        "cvae_fmnist.toml",
        "vae_moons_toy2d.toml",
        "vae_rgb32.toml",
    }
