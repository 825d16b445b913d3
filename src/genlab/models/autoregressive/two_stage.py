"""Two-stage generation (van den Oord et al. 2017, sec. 3.2; Razavi et al. 2019): a VQ-VAE learns discrete
codes, then an autoregressive prior (a Gated PixelCNN or a causal Transformer) learns p(codes); sampling draws
codes from the prior and decodes them. One config, one run: the prior's phase starts after the VQ-VAE has had
`prior_start` of the budget, and both keep training from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import (
    DECODING_OPTIONS,
    at_least_float32,
    check_decoding,
    filter_logits,
    sample_categorical,
    start_tokens,
)
from genlab.models.autoregressive.transformer import generate
from genlab.models.base import Batch, GenerativeModel, Phase, SampleOption
from genlab.models.vae.vqvae import VQVAE, VQVAEConfig
from genlab.nn.masked import GatedPixelCNN, assert_causal
from genlab.nn.transformer import CausalTransformer
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class VQVAEPriorConfig(VQVAEConfig):
    """The VQ-VAE's keys, plus the prior's (prior_*)."""

    name: str = param("vqvae_prior", help="model name")
    prior: Literal["pixelcnn", "transformer"] = param("pixelcnn", help="the autoregressive model of the code grid")
    prior_start: float = param(0.5, ge=0, lt=1, help="fraction of the training budget after which the prior starts training")
    prior_channels: int = param(64, ge=1, help="pixelcnn prior: feature channels")
    prior_layers: int = param(6, ge=1, help="pixelcnn: gated layers; transformer: blocks")
    prior_kernel_size: int = param(3, ge=1, help="pixelcnn prior: odd kernel width after the first layer")
    prior_first_kernel_size: int = param(5, ge=1, help="pixelcnn prior: odd kernel width of the first (mask A) layer")
    prior_embed_dim: int = param(32, ge=1, help="pixelcnn prior: size of the code embedding fed to the network")
    prior_d_model: int = param(128, ge=1, help="transformer prior: width")
    prior_heads: int = param(4, ge=1, help="transformer prior: attention heads")
    prior_positions: Literal["learned", "rope"] = param("learned", help="transformer prior: position encoding")
    conditional: bool = param(False, help="class-conditional prior p(codes | y); the VQ-VAE itself is unconditional")
    cond_dim: int = param(32, ge=1, help="pixelcnn prior: size of the class embedding")


@register_model("vqvae_prior", VQVAEPriorConfig)
class VQVAEPrior(GenerativeModel):
    """p(x) ~ p(x | z) p_prior(z) with z the VQ-VAE's code grid, and the bound
        -log p(x) <= -log p(x | z_q(x)) - log p_prior(z_q(x))
    (the ELBO of the one-hot posterior q(z | x) = [z = z_q(x)]).

    Example:
        >>> model = VQVAEPrior(VQVAEPriorConfig(prior="transformer"), DataSpec((1, 28, 28)))
        >>> model.loss(batch, phase="vqvae"); model.loss(batch, phase="prior")
        >>> model.sample(16, generator=g, temperature=0.9)
    """

    family = "autoregressive"
    likelihood = "bound"
    bound_name = "ELBO, one-hot posterior, learned prior over codes"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return DECODING_OPTIONS

    def __init__(self, config: VQVAEPriorConfig, spec: DataSpec):
        super().__init__(config, spec)
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        self.vqvae = VQVAE(config, spec)
        h, w = self.vqvae.latent_shape
        K, n_starts = config.codebook_size, spec.num_classes if self.conditional else 1
        if config.prior == "pixelcnn":
            for key in ("prior_kernel_size", "prior_first_kernel_size"):
                if getattr(config, key) % 2 == 0:
                    raise ConfigError(f"model.{key}={getattr(config, key)}: expected an odd kernel width")
            self.code_embed = nn.Embedding(K, config.prior_embed_dim)
            self.class_embed = nn.Embedding(n_starts, config.cond_dim) if self.conditional else None
            self.prior_net = GatedPixelCNN(
                config.prior_embed_dim,
                K,
                channels=config.prior_channels,
                n_layers=config.prior_layers,
                kernel_size=config.prior_kernel_size,
                first_kernel_size=config.prior_first_kernel_size,
                cond_dim=config.cond_dim if self.conditional else 0,
            )
            assert_causal(self.prior_net, (config.prior_embed_dim, min(h, 6), min(w, 6)), groups=1)
        else:
            if config.prior_d_model % config.prior_heads:
                raise ConfigError(
                    f"model.prior_d_model={config.prior_d_model} must be a multiple of model.prior_heads={config.prior_heads}"
                )
            self.prior_net = CausalTransformer(
                K, h * w, config.prior_d_model, config.prior_layers, config.prior_heads, config.prior_positions, n_starts=n_starts
            )

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        small = {"channels": [8], "blocks": 0, "codebook_size": 8, "code_dim": 4, "prior_layers": 2}
        return [
            ({**small, "prior_channels": 8, "prior_embed_dim": 4}, DataSpec((1, 8, 8))),
            (
                {**small, "prior": "transformer", "prior_d_model": 16, "prior_heads": 2, "conditional": True},
                DataSpec((1, 8, 8), num_classes=3),
            ),
            (
                {**small, "prior_channels": 8, "prior_embed_dim": 4, "conditional": True, "cond_dim": 4},
                DataSpec((1, 4, 4), encoding="binary", num_classes=2),
            ),
        ]

    def phases(self) -> list[Phase]:
        return [
            Phase("vqvae", self.vqvae.parameters()),
            Phase("prior", [p for n, p in self.named_parameters() if not n.startswith("vqvae.")], start_fraction=self.config.prior_start),
        ]

    def _pixelcnn_logits(self, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Codes (B, h', w) -> logits (B, K, h', w) of p(z_ij | z_<ij, y)."""
        c = self.class_embed(y) if self.class_embed is not None else None
        return self.prior_net(self.code_embed(codes).permute(0, 3, 1, 2), c)

    def prior_log_prob(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p_prior(z | y) per example (B,), nats, for code grids (B, h, w)."""
        s = start_tokens(self, y, len(codes))
        if self.config.prior == "pixelcnn":
            return -F.cross_entropy(self._pixelcnn_logits(codes, s), codes, reduction="none").flatten(1).sum(1)
        flat = codes.flatten(1)
        logp = torch.log_softmax(at_least_float32(self.prior_net.logits(flat, s)), dim=-1)
        return logp.gather(-1, flat[..., None])[..., 0].sum(1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """phase "vqvae": the VQ-VAE's loss; phase "prior": -log p_prior(codes of x) per code; None: both."""
        x = batch["x"]
        out: dict[str, torch.Tensor] = {}
        if phase in (None, "vqvae"):
            out = self.vqvae.loss(batch)
        if phase in (None, "prior"):
            codes = self.vqvae.encode(x)  # no gradient into the VQ-VAE, no codebook update
            nll = -self.prior_log_prob(codes, batch.get("y"))
            prior_loss = nll.mean() / self.vqvae.n_codes
            out = {**out, "loss": out.get("loss", 0.0) + prior_loss, "prior_nll": nll.mean().detach()}
        if not out:
            raise ValueError(f"unknown phase {phase!r}: expected 'vqvae' or 'prior'")
        return out

    @torch.no_grad()
    def nll_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        """-log p(x | z_q(x)) - log p_prior(z_q(x) | y), (B,) nats."""
        codes = self.vqvae.encode(x)
        return self.vqvae.recon_nll(x, codes) - self.prior_log_prob(codes, y)

    @torch.no_grad()
    def sample_codes(
        self,
        n: int,
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """Code grids (n, h, w) from the prior, one code at a time."""
        check_decoding(temperature, top_k, top_p)
        s = start_tokens(self, y, n)
        h, w = self.vqvae.latent_shape
        if self.config.prior == "transformer":
            flat = generate(self.prior_net, n, h * w, s, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p)
            return flat.view(n, h, w)
        codes = torch.zeros(n, h, w, dtype=torch.long, device=self.device)
        for i in range(h):
            for j in range(w):
                logits = self._pixelcnn_logits(codes[:, : i + 1], s)[:, :, i, j]  # rows > i are never seen
                codes[:, i, j] = sample_categorical(filter_logits(at_least_float32(logits), temperature, top_k, top_p), generator)
        return codes

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Codes from the prior (with `temperature`, `top_k`, `top_p`), decoded by the VQ-VAE: (n, C, H, W) in [-1, 1]."""
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        return self.vqvae.decode(self.sample_codes(n, labels, generator, temperature, top_k, top_p))

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        return self.vqvae.figures(batch)
