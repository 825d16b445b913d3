"""Variational autoencoder (Kingma & Welling 2014) with the importance-weighted bound (IWAE, Burda et al. 2016),
the beta-VAE weight on the KL (Higgins et al. 2017), class conditioning (CVAE, Sohn et al. 2015) and learned
priors: a mixture of Gaussians in latent space, or the VampPrior (Tomczak & Welling 2018)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.distributions import (
    BernoulliHead,
    DiscretizedLogisticHead,
    DiscretizedLogisticMixtureHead,
    GaussianHead,
    LikelihoodHead,
    Params,
    gaussian_kl_standard,
    rand,
    randn,
    standard_normal_log_prob,
)
from genlab.nn.convnets import ConvDecoder, ConvEncoder, check_levels
from genlab.nn.functional import slerp
from genlab.nn.mlp import MLP, Activation
from genlab.registry import register_model
from genlab.spec import DataSpec

Decoder = Literal["bernoulli", "gaussian", "logistic", "logistic_mixture"]
Prior = Literal["standard", "mog", "vamp"]

# Importance samples are decoded in chunks of at most this many data coordinates (chunk x batch x dim): IWAE-1000
# on a batch of 256 28x28 images then peaks at about 0.6 GB (logistic) to 0.9 GB (5-component mixture) of RSS.
_IWAE_CHUNK_ELEMENTS = 2**21


@dataclass
class VAEConfig(ModelConfig):
    """A VAE: encoder q(z|x) = N(mu(x), diag sigma^2(x)), prior p(z) (N(0, I) or learned), decoder p(x|z) from a likelihood head."""

    name: str = param("vae", help="model name")
    latent_dim: int = param(32, ge=1, help="dimension of the latent z")
    net: Literal["auto", "conv", "mlp"] = param("auto", help="encoder/decoder networks: auto = conv for images, mlp for vectors")
    channels: tuple[int, ...] = param(
        (32, 64), ge=1, help="conv: channel widths per level; each level halves the resolution (28 -> 14 -> 7)"
    )
    blocks: int = param(0, ge=0, help="conv: residual blocks per level (each costs two 3x3 convs at that resolution)")
    upsample: Literal["transposed", "nearest"] = param(
        "transposed", help="conv decoder: 4x4 stride-2 transposed conv, or nearest + 3x3 conv (2-4x the FLOPs)"
    )
    hidden: tuple[int, ...] = param((512, 256), ge=1, help="mlp: encoder hidden widths, mirrored by the decoder; [] is a linear map")
    activation: Activation = param("silu", help="activation of both networks")
    norm: bool = param(True, help="GroupNorm in conv nets, LayerNorm in MLPs")
    decoder: Literal["auto", "bernoulli", "gaussian", "logistic", "logistic_mixture"] = param(
        "auto", help="p(x|z): auto = bernoulli for binary data, logistic for 8-bit data, gaussian for dequantised or continuous data"
    )
    scale: Literal["pixel", "channel"] = param(
        "pixel", help="gaussian/logistic: log-scale predicted per pixel by the decoder, or learned per channel"
    )
    n_mix: int = param(5, ge=1, help="logistic_mixture: components per pixel")
    beta: float = param(1.0, ge=0, help="weight of the KL term in the training loss (beta-VAE); bounds always use 1")
    conditional: bool = param(False, help="class-conditional VAE: one-hot labels feed the encoder and the decoder")
    free_bits: float = param(0.0, ge=0, help="nats per latent dimension (batch mean) below which the KL is not penalised")
    kl_warmup_steps: int = param(0, ge=0, help="raise the KL weight linearly from 0 to beta over this many training batches")
    prior: Prior = param(
        "standard",
        help="p(z): standard = N(0, I) (closed-form KL); mog = learned mixture of diagonal Gaussians; "
        "vamp = VampPrior, the encoder's posteriors at learned pseudo-inputs (both: one-sample Monte Carlo KL)",
    )
    prior_components: int = param(64, ge=1, help="mog / vamp: mixture components (pseudo-inputs for vamp)")


def _describe(spec: DataSpec) -> str:
    if spec.encoding == "continuous":
        return f"continuous vectors of shape {spec.shape}"
    if spec.encoding == "binary":
        return "binary images"
    return "dequantised 8-bit images" if spec.dequantized else "8-bit images (256 levels)"


def resolve(cfg: VAEConfig, spec: DataSpec) -> tuple[Literal["conv", "mlp"], Decoder]:
    """The network kind and likelihood a config means on data `spec`, or a ConfigError naming the key to change."""
    net = cfg.net if cfg.net != "auto" else ("conv" if spec.is_image else "mlp")
    if net == "conv":
        if not spec.is_image:
            raise ConfigError(f"model.net='conv' needs images, but the data are {_describe(spec)}; set model.net='mlp' (or 'auto')")
        check_levels(cfg.channels, spec.shape[1:])
    decoder = cfg.decoder
    if decoder == "auto":
        decoder = {"binary": "bernoulli", "continuous": "gaussian"}.get(spec.encoding, "gaussian" if spec.dequantized else "logistic")
    what = _describe(spec)
    if decoder == "bernoulli" and spec.encoding != "binary":
        raise ConfigError(
            f"model.decoder='bernoulli' models binary pixels, but the data are {what}; set data.binarize=true (or model.decoder='auto')"
        )
    if decoder in ("logistic", "logistic_mixture"):
        if spec.encoding != "8bit":
            raise ConfigError(
                f"model.decoder={decoder!r} models the 256 levels of 8-bit images, but the data are {what}; set model.decoder='auto'"
            )
        if spec.dequantized:
            raise ConfigError(
                f"model.decoder={decoder!r} is a distribution over the 256 pixel levels, but the data are dequantised; "
                "set data.dequantize=false (or model.decoder='gaussian')"
            )
    if decoder == "gaussian":
        if spec.encoding == "binary":
            raise ConfigError(
                "model.decoder='gaussian' is a density over continuous values, but the data are binary; "
                "set model.decoder='bernoulli' (or 'auto')"
            )
        if spec.encoding == "8bit" and not spec.dequantized:
            raise ConfigError(
                "model.decoder='gaussian' is a density, which is no likelihood on the 256 discrete pixel levels; "
                "set data.dequantize=true (or model.decoder='logistic')"
            )
    if cfg.conditional and spec.num_classes == 0:
        raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
    if cfg.prior != "standard" and cfg.free_bits > 0:
        raise ConfigError(
            f"model.free_bits={cfg.free_bits} charges the KL per latent dimension, which only the standard prior's closed form "
            f"splits; with model.prior={cfg.prior!r} set model.free_bits=0 (or model.prior='standard')"
        )
    if cfg.prior == "vamp" and cfg.conditional:
        raise ConfigError(
            "model.prior='vamp' feeds pseudo-inputs through the encoder, which a conditional VAE cannot do without labels; "
            "use model.prior='mog' (or 'standard') with model.conditional=true"
        )
    return net, decoder


def mixture_log_prob(z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log sum_k w_k N(z; m_k, diag exp(logvars_k)) for z (..., D), means/logvars (K, D), log_weights (K,): (...).

    The squared distances come from three matmuls, sum_d (z_d - m_d)^2 / v_d = z^2 . 1/v - 2 z . m/v + m^2 . 1/v,
    so no (..., K, D) tensor is built (IWAE-1000 evaluates the prior at a million points).
    """
    inv_var = torch.exp(-logvars)  # (K, D)
    zf = z.reshape(-1, z.shape[-1])
    sq = (zf * zf) @ inv_var.T - 2 * zf @ (means * inv_var).T + (means * means * inv_var).sum(1)  # (N, K)
    log_norm = -0.5 * (logvars.sum(1) + z.shape[-1] * math.log(2 * math.pi))  # (K,)
    comp = log_weights + log_norm - 0.5 * sq.clamp(min=0)
    return torch.logsumexp(comp, dim=-1).view(z.shape[:-1])


def mixture_sample(
    n: int,
    means: torch.Tensor,
    logvars: torch.Tensor,
    log_weights: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """n draws (n, D) from the mixture, each component's standard deviation scaled by `temperature`: a component by
    inverting the weights' CDF, then its Gaussian."""
    cdf = torch.cumsum(torch.softmax(log_weights, 0), 0)
    k = torch.searchsorted(cdf, rand((n,), cdf, generator) * cdf[-1]).clamp(max=len(cdf) - 1)
    eps = randn((n, means.shape[1]), means, generator)
    return means[k] + temperature * torch.exp(0.5 * logvars[k]) * eps


class MixturePrior(nn.Module):
    """A learned p(z) = sum_k pi_k N(z; m_k, diag exp(l_k)): means spread as N(0, I) draws, l_k = 0, uniform pi."""

    def __init__(self, components: int, latent_dim: int):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(means (K, D), logvars (K, D), log_weights (K,))."""
        return self.means, self.logvars, torch.log_softmax(self.logits, 0)


def kl_weight(model: nn.Module) -> float | torch.Tensor:
    """The KL term's weight: beta, ramped linearly from 0 over model.kl_warmup_steps training calls (KL warm-up,
    Bowman et al. 2016); each training call advances the model's `kl_step` buffer."""
    beta, warmup = model.config.beta, model.config.kl_warmup_steps
    if not warmup:
        return beta
    weight = beta * (model.kl_step / warmup).clamp(max=1.0)
    if model.training:
        model.kl_step += 1
    return weight


def _make_head(decoder: Decoder, cfg: VAEConfig, spec: DataSpec) -> LikelihoodHead:
    if decoder == "bernoulli":
        return BernoulliHead(spec.shape)
    if decoder == "gaussian":
        return GaussianHead(spec.shape, cfg.scale)
    if decoder == "logistic":
        return DiscretizedLogisticHead(spec.shape, cfg.scale)
    return DiscretizedLogisticMixtureHead(spec.shape, cfg.n_mix)


@register_model("vae", VAEConfig)
class VAE(GenerativeModel):
    """q(z|x[, y]) = N(mu, diag exp(logvar)), p(z) = N(0, I) or learned, p(x|z[, y]) a likelihood head; log-densities in nats.

    model.prior = "mog" learns a mixture of K diagonal Gaussians as p(z); "vamp" is the VampPrior
    p(z) = (1/K) sum_k q(z | u_k) at K learned pseudo-inputs u_k (Tomczak & Welling 2018). Both fill the
    "holes" where N(0, I) has mass but the aggregate posterior has none, which decode to blurry images.

    Example:
        >>> spec = DataSpec(shape=(1, 28, 28), encoding="binary")
        >>> vae = VAE(VAEConfig(latent_dim=16), spec)
        >>> out = vae.loss({"x": x})                 # {"loss", "nll_bound", "recon", "kl"}
        >>> nll = vae.nll_bound(x, k=1000)           # (B,) IWAE-1000 bound on -log p(x)
        >>> imgs = vae.sample(64, generator=torch.Generator().manual_seed(0))
    """

    family = "vae"
    likelihood = "bound"
    bound_name = "ELBO / IWAE-k"
    importance_weighted = True  # nll_bound(k > 1) tightens the bound; the harness reports ELBO and IWAE-k

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (
            SampleOption("temperature", float, "scale of the prior's standard deviation"),
            SampleOption("mean", bool, "decode to E[x | z] (true) or draw x ~ p(x | z)"),
        )

    def __init__(self, config: VAEConfig, spec: DataSpec):
        super().__init__(config, spec)
        net, decoder = resolve(config, spec)
        self.net_kind, self.decoder_kind = net, decoder
        self.head = _make_head(decoder, config, spec)
        D, K = config.latent_dim, spec.num_classes if config.conditional else 0
        out = self.head.params_per_dim
        common = {"activation": config.activation}
        if net == "conv":
            conv = {"blocks": config.blocks, "norm": config.norm, **common}
            C, size = spec.shape[0], spec.shape[1:]
            self.encoder = ConvEncoder(C, size, config.channels, 2 * D, cond_dim=K, **conv)
            self.decoder = ConvDecoder(D + K, out * C, size, config.channels, upsample=config.upsample, **conv)
        else:
            mlp = {"layer_norm": config.norm, **common}
            self.encoder = MLP(spec.dim + K, 2 * D, config.hidden, **mlp)
            self.decoder = MLP(D + K, out * spec.dim, tuple(reversed(config.hidden)), **mlp)
        if config.prior == "mog":
            self.prior = MixturePrior(config.prior_components, D)
        elif config.prior == "vamp":
            # Pseudo-inputs u_k = tanh(w_k) for images (inside the data range [-1, 1]), w_k for vectors; w ~ N(0, 0.1^2).
            self.pseudo_inputs = nn.Parameter(0.1 * torch.randn(config.prior_components, *spec.shape))
        if config.kl_warmup_steps:
            # Training batches seen, for the KL warm-up; saved with the weights so a resumed run continues the ramp.
            self.register_buffer("kl_step", torch.zeros((), dtype=torch.long))

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        """One small instance per likelihood head and network kind."""
        return [
            ({"latent_dim": 4, "channels": [8, 8], "blocks": 1}, DataSpec((1, 8, 8), encoding="8bit")),
            ({"latent_dim": 4, "channels": [8]}, DataSpec((1, 8, 8), encoding="binary")),
            (
                {"latent_dim": 4, "channels": [8], "decoder": "logistic_mixture", "n_mix": 2, "conditional": True, "upsample": "nearest"},
                DataSpec((3, 8, 8), num_classes=3),
            ),
            (
                {"latent_dim": 4, "channels": [8], "scale": "channel", "kl_warmup_steps": 10},
                DataSpec((1, 8, 8), encoding="8bit", dequantized=True),
            ),
            ({"latent_dim": 2, "hidden": [16]}, DataSpec((2,), encoding="continuous")),
            ({"latent_dim": 4, "hidden": [16], "prior": "mog", "prior_components": 3}, DataSpec((1, 8, 8), encoding="binary")),
            ({"latent_dim": 4, "channels": [8], "prior": "vamp", "prior_components": 3}, DataSpec((1, 8, 8), encoding="binary")),
            ({"latent_dim": 2, "hidden": [16], "prior": "vamp", "prior_components": 2}, DataSpec((2,), encoding="continuous")),
        ]

    def prior_params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The learned prior as a mixture (means (K, D), logvars (K, D), log_weights (K,)); None for N(0, I)."""
        if self.config.prior == "mog":
            return self.prior()
        if self.config.prior == "vamp":
            u = torch.tanh(self.pseudo_inputs) if self.spec.is_image else self.pseudo_inputs
            means, logvars = self.encode(u)
            K = len(means)
            return means, logvars, torch.full((K,), -math.log(K), dtype=means.dtype, device=means.device)
        return None

    def log_prior(self, z: torch.Tensor, params: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """log p(z) for z (..., latent_dim): (...). `params` reuses one `prior_params()` for many calls."""
        if self.config.prior == "standard":
            return standard_normal_log_prob(z).sum(-1)
        return mixture_log_prob(z, *(params if params is not None else self.prior_params()))

    def _onehot(self, y: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor | None:
        """One-hot labels (n, K) for a conditional model (labels required), None for an unconditional one."""
        y = self.class_labels(y, n)
        return None if y is None else F.one_hot(y, self.spec.num_classes).to(like.dtype)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x[, y]): x (B, *shape) -> (mu, logvar), each (B, latent_dim). Labels are ignored by an unconditional VAE."""
        if tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"expected inputs of shape (B, {', '.join(map(str, self.spec.shape))}), got {tuple(x.shape)}")
        c = self._onehot(y, x.shape[0], x)
        if self.net_kind == "conv":
            h = self.encoder(x, c)
        else:
            h = self.encoder(x.flatten(1) if c is None else torch.cat([x.flatten(1), c], dim=1))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Params:
        """p(x|z[, y]): z (B, latent_dim) -> the likelihood head's parameters (see `self.head`)."""
        c = self._onehot(y, z.shape[0], z)
        return self.head.params(self.decoder(z if c is None else torch.cat([z, c], dim=1)))

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Negative ELBO per example, batch mean, with the KL weighted by beta (and warm-up / free bits):
        -E_q[log p(x|z)] + beta KL(q(z|x) || p(z)), one reparameterised sample z = mu + sigma * eps.

        The KL is in closed form for p(z) = N(0, I); for a learned prior it is the one-sample Monte Carlo
        estimate log q(z|x) - log p(z) at the same z (unbiased, so the reported ELBO stays a bound in expectation).
        """
        x, y = batch["x"], batch.get("y")
        mu, logvar = self.encode(x, y)
        eps = torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        recon = -self.head.log_prob(x, self.decode(z, y))  # (B,)
        if self.config.prior == "standard":
            kl = gaussian_kl_standard(mu, logvar)  # (B, D)
            # Free bits (Kingma et al. 2016): each latent's batch-mean KL is charged at least free_bits nats.
            kl_penalty = kl.mean(0).clamp(min=self.config.free_bits).sum()
            kl_sum = kl.sum(1)
        else:
            log_qz = (standard_normal_log_prob(eps) - 0.5 * logvar).sum(1)  # log N(z; mu, sigma^2)
            kl_sum = log_qz - self.log_prior(z)  # (B,)
            kl_penalty = kl_sum.mean()
        weight = kl_weight(self)
        return {
            "loss": recon.mean() + weight * kl_penalty,
            "nll_bound": (recon + kl_sum).mean().detach(),
            "recon": recon.mean().detach(),
            "kl": kl_sum.mean().detach(),
        }

    @torch.no_grad()
    def nll_bound(
        self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Upper bound on -log p(x) per example, (B,), in nats; k = 1 is the negative ELBO, k > 1 the IWAE bound

            -log (1/k) sum_i p(x, z_i) / q(z_i | x),  z_i ~ q(z | x)   (Burda et al. 2016, eq. 8),

        which tightens as k grows. The k samples are decoded in chunks, so k = 1000 fits in memory.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1 importance samples, got {k}")
        mu, logvar = self.encode(x, y)  # (B, D)
        prior = self.prior_params()
        B, D = mu.shape
        chunk = max(1, _IWAE_CHUNK_ELEMENTS // (B * self.spec.dim))
        log_w = []
        for start in range(0, k, chunk):
            c = min(chunk, k - start)
            eps = randn((B, c, D), mu, generator)
            z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps  # (B, c, D)
            xs = x.unsqueeze(1).expand(B, c, *x.shape[1:]).reshape(B * c, *x.shape[1:])
            ys = None if y is None else y.repeat_interleave(c)
            log_px_z = self.head.log_prob(xs, self.decode(z.reshape(B * c, D), ys)).view(B, c)
            log_pz = self.log_prior(z, prior)  # (B, c)
            log_qz = (standard_normal_log_prob(eps) - 0.5 * logvar[:, None]).sum(-1)  # log N(z; mu, sigma^2)
            log_w.append(log_px_z + log_pz - log_qz)  # (B, c)
        return math.log(k) - torch.logsumexp(torch.cat(log_w, dim=1), dim=1)

    def _to_data(self, params: Params, mean: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """The decoder's mean (or a sample), clamped to [-1, 1] for images."""
        x = self.head.mean(params) if mean else self.head.sample(params, generator)
        return x.clamp(-1, 1) if self.spec.is_image else x

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        mean: bool = True,
        **kwargs,
    ) -> torch.Tensor:
        """n examples x = E[x | z] (or x ~ p(x|z) with mean=False), z ~ p(z), drawn with `generator`.

        `temperature` scales the prior's standard deviation: z ~ N(0, temperature^2 I), or for a learned mixture
        prior each component's standard deviation (the component is drawn from the learned weights).
        """
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        like = next(self.decoder.parameters())
        if self.config.prior == "standard":
            z = temperature * randn((n, self.config.latent_dim), like, generator)
        else:
            z = mixture_sample(n, *self.prior_params(), generator=generator, temperature=temperature)
        return self._to_data(self.decode(z, labels), mean, generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z = mu(x)]: the decoder mean at the posterior mean, (B, *shape)."""
        mu, _ = self.encode(x, y)
        return self._to_data(self.decode(mu, y))

    @torch.no_grad()
    def interpolate(
        self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8, y: torch.Tensor | None = None, spherical: bool = True
    ) -> torch.Tensor:
        """Decoder means along the path between the posterior means of x0 and x1 (B, *shape): (B, steps, *shape).

        `spherical` follows the great circle (slerp), which keeps the path where N(0, I) has its mass; else a line.
        """
        mu0, _ = self.encode(x0, y)
        mu1, _ = self.encode(x1, y)
        t = torch.linspace(0, 1, steps, dtype=mu0.dtype, device=mu0.device)
        z = slerp(mu0, mu1, t) if spherical else mu0[:, None] + t[None, :, None] * (mu1 - mu0)[:, None]  # (B, T, D)
        ys = None if y is None else y.repeat_interleave(steps)
        out = self._to_data(self.decode(z.flatten(0, 1), ys))
        return out.view(x0.shape[0], steps, *self.spec.shape)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """Reconstructions (originals above, reconstructions below) and latent interpolations, for images."""
        if not self.spec.is_image or len(batch["x"]) < 16:
            return {}
        x, y = batch["x"][:16], batch.get("y")
        y = y[:16] if self.conditional else None
        rec = torch.cat([x[:8], self.reconstruct(x[:8], None if y is None else y[:8])])
        # Interpolations keep the label of the start image for a conditional model.
        ys = None if y is None else y[:4]
        path = self.interpolate(x[:4], x[8:12], steps=10, y=ys)  # (4, 10, C, H, W)
        return {"reconstructions": (rec, 8), "interpolations": (path.flatten(0, 1), 10)}
