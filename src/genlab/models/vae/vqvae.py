"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning"): a convolutional encoder whose
output vectors snap to the nearest of K codebook entries, straight-through gradients, the commitment loss,
EMA codebook updates (their App. A.1) and restarts of dead codes from encoder outputs (as in Jukebox, Dhariwal
et al. 2020). With its uniform prior over codes it bounds the NLL; `vqvae_prior` learns the prior."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.base import Batch, GenerativeModel
from genlab.models.distributions import BernoulliHead, DiscretizedLogisticHead, DiscretizedLogisticMixtureHead, LikelihoodHead, Params
from genlab.nn.convnets import ResBlock, check_levels, lowest_resolution
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class VQVAEConfig(ModelConfig):
    """Encoder x -> z_e (h x w x D), quantiser z_q = nearest codebook entry, decoder p(x | z_q)."""

    name: str = param("vqvae", help="model name")
    channels: tuple[int, ...] = param((32, 64), ge=1, help="channel widths per level; each level halves the resolution (28 -> 14 -> 7)")
    blocks: int = param(1, ge=0, help="residual blocks at the lowest resolution, in the encoder and the decoder")
    codebook_size: int = param(128, ge=2, help="K, the number of codes")
    code_dim: int = param(16, ge=1, help="D, the size of each code vector")
    beta: float = param(0.25, ge=0, help="weight of the commitment loss ||z_e - sg(z_q)||^2")
    ema: bool = param(True, help="update the codebook by exponential moving averages (else by the codebook loss)")
    ema_decay: float = param(0.99, gt=0, lt=1, help="gamma of the EMA codebook updates")
    dead_code_threshold: float = param(
        0.01, ge=0, lt=1, help="restart a code from an encoder output when its EMA share of assignments falls below this fraction of 1/K"
    )
    decoder: Literal["auto", "bernoulli", "logistic", "logistic_mixture"] = param(
        "auto", help="p(x | z_q): auto = bernoulli for binary data, logistic for 8-bit data"
    )
    n_mix: int = param(5, ge=1, help="logistic_mixture: components per pixel")


def _resolve_decoder(cfg: VQVAEConfig, spec: DataSpec) -> str:
    if not spec.is_image:
        raise ConfigError(f"a VQ-VAE encodes images (C, H, W); the data have shape {spec.shape}")
    if spec.encoding == "continuous" or (spec.encoding == "8bit" and spec.dequantized):
        raise ConfigError("the VQ-VAE's decoder models discrete pixels; set data.dequantize=false")
    decoder = cfg.decoder if cfg.decoder != "auto" else ("bernoulli" if spec.encoding == "binary" else "logistic")
    if (decoder == "bernoulli") != (spec.encoding == "binary"):
        raise ConfigError(f"model.decoder={decoder!r} does not fit {spec.encoding} pixels; set model.decoder='auto'")
    check_levels(cfg.channels, spec.shape[1:], "a VQ-VAE")
    return decoder


class VectorQuantizer(nn.Module):
    """z_e (B, D, h, w) -> (z_q with straight-through gradients, codes (B, h, w), commitment, codebook loss).

    EMA updates (van den Oord et al. 2017, App. A.1), in training mode only:
        N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) sum_{j: k(j) = k} z_e_j,   e_k = m_k / N_k
    (with Laplace smoothing of N). A code whose share N_k / sum N drops below threshold / K is restarted at a
    random encoder output of the batch. The codebook starts at encoder outputs of the first training batch.
    """

    def __init__(self, K: int, D: int, ema: bool = True, decay: float = 0.99, dead_threshold: float = 0.01):
        super().__init__()
        self.K, self.D, self.ema, self.decay, self.dead_threshold = K, D, ema, decay, dead_threshold
        if ema:
            self.register_buffer("codebook", torch.randn(K, D) / math.sqrt(D))
            self.register_buffer("cluster_size", torch.ones(K))
            self.register_buffer("embed_sum", self.codebook.clone())
        else:
            self.codebook = nn.Parameter(torch.randn(K, D) / math.sqrt(D))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Flat vectors (N, D) -> index of the nearest code (N,) in Euclidean distance."""
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        return d.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> code vectors (B, D, h, w)."""
        return F.embedding(codes, self.codebook).permute(0, 3, 1, 2)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = F.one_hot(codes, self.K).type_as(flat)  # (N, K)
        g = self.decay
        self.cluster_size.mul_(g).add_(onehot.sum(0), alpha=1 - g)
        self.embed_sum.mul_(g).add_(onehot.t() @ flat, alpha=1 - g)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + self.K * 1e-5) * n
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        self._restart_dead(flat, n)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, n: torch.Tensor) -> None:
        dead = self.cluster_size < self.dead_threshold * n / self.K
        k = int(dead.sum())
        if k == 0:
            return
        picks = flat[torch.randint(len(flat), (k,), device=flat.device)]
        self.codebook[dead] = picks
        if self.ema:
            # A restarted code starts with an average share, so it is not restarted again before it can attract vectors.
            self.cluster_size[dead] = n / self.K
            self.embed_sum[dead] = picks * (n / self.K)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        B, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D)
        if self.training and not bool(self.initialised):
            with torch.no_grad():  # start the codebook at encoder outputs (k-means style), not at random vectors
                self.codebook.data.copy_(flat[torch.randint(len(flat), (self.K,), device=flat.device)])
                if self.ema:
                    self.embed_sum.copy_(self.codebook)
                self.initialised.fill_(True)
        codes = self.nearest(flat.detach())
        z_q = self.lookup(codes.view(B, h, w))
        commitment = F.mse_loss(z_e, z_q.detach())
        codebook_loss = z_e.new_zeros(()) if self.ema else F.mse_loss(z_q, z_e.detach())
        if self.training:
            with torch.no_grad():
                if self.ema:
                    self._ema_update(flat.detach().float(), codes)
                else:
                    self._restart_dead_plain(flat.detach(), torch.bincount(codes, minlength=self.K).float())
        z_st = z_e + (z_q - z_e).detach()  # straight-through: the decoder's gradient flows to the encoder unchanged
        return z_st, codes.view(B, h, w), commitment, codebook_loss

    @torch.no_grad()
    def _restart_dead_plain(self, flat: torch.Tensor, counts: torch.Tensor) -> None:
        """Without EMA statistics: a code no vector of the batch chose is restarted at a random encoder output."""
        dead = counts == 0
        if self.dead_threshold > 0 and bool(dead.any()):
            self.codebook.data[dead] = flat[torch.randint(len(flat), (int(dead.sum()),), device=flat.device)]


class _Encoder(nn.Module):
    """Image -> (B, D, H / 2^L, W / 2^L): L stride-2 4x4 convolutions, residual blocks, a 1x1 projection to D."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], blocks: int, code_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(c, ch, 4, stride=2, padding=1)] + ([nn.SiLU()] if i < len(channels) - 1 else [])
            c = ch
        layers += [ResBlock(c) for _ in range(blocks)] + [nn.SiLU(), nn.Conv2d(c, code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Decoder(nn.Module):
    """(B, D, h, w) -> (B, out, h * 2^L, w * 2^L): mirror of the encoder with 4x4 transposed convolutions."""

    def __init__(self, code_dim: int, channels: tuple[int, ...], blocks: int, out_channels: int):
        super().__init__()
        rev = list(reversed(channels))
        layers: list[nn.Module] = [nn.Conv2d(code_dim, rev[0], 3, padding=1)] + [ResBlock(rev[0]) for _ in range(blocks)]
        for i, ch in enumerate(rev):
            out = rev[i + 1] if i + 1 < len(rev) else out_channels
            layers += [nn.SiLU(), nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


@register_model("vqvae", VQVAEConfig)
class VQVAE(GenerativeModel):
    """Discrete latents z (h x w codes out of K) with p(x | z) a likelihood head and, here, a uniform prior:
        -log p(x) <= -log p(x | z_q(x)) + h w log K,
    the ELBO of a one-hot posterior (van den Oord et al. 2017, sec. 3.2). Train the prior with `vqvae_prior`.

    Example:
        >>> spec = DataSpec(shape=(1, 28, 28))
        >>> vq = VQVAE(VQVAEConfig(codebook_size=128), spec)
        >>> codes = vq.encode(x)                 # (B, 7, 7) ints in [0, 128)
        >>> x_hat = vq.decode(codes)             # (B, 1, 28, 28) in [-1, 1]
    """

    family = "vae"
    likelihood = "bound"
    bound_name = "ELBO, uniform prior over codes"

    def __init__(self, config: VQVAEConfig, spec: DataSpec):
        super().__init__(config, spec)
        decoder = _resolve_decoder(config, spec)
        self.head: LikelihoodHead
        if decoder == "bernoulli":
            self.head = BernoulliHead(spec.shape)
        elif decoder == "logistic":
            self.head = DiscretizedLogisticHead(spec.shape)
        else:
            self.head = DiscretizedLogisticMixtureHead(spec.shape, config.n_mix)
        C = spec.shape[0]
        self.latent_shape = lowest_resolution(spec.shape[1:], len(config.channels))
        self.encoder = _Encoder(C, tuple(config.channels), config.blocks, config.code_dim)
        self.quantizer = VectorQuantizer(config.codebook_size, config.code_dim, config.ema, config.ema_decay, config.dead_code_threshold)
        self.decoder = _Decoder(config.code_dim, tuple(config.channels), config.blocks, self.head.params_per_dim * C)

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"channels": [8], "blocks": 1, "codebook_size": 8, "code_dim": 4}, DataSpec((1, 8, 8))),
            ({"channels": [8, 8], "blocks": 0, "codebook_size": 8, "code_dim": 4, "ema": False}, DataSpec((1, 8, 8), encoding="binary")),
            ({"channels": [6], "codebook_size": 4, "code_dim": 2, "decoder": "logistic_mixture", "n_mix": 2}, DataSpec((3, 4, 4))),
        ]

    @property
    def n_codes(self) -> int:
        return self.latent_shape[0] * self.latent_shape[1]

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.spec.shape))}), got {tuple(x.shape)}")

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (z_q straight-through (B, D, h, w), codes (B, h, w), commitment, codebook loss)."""
        self._check(x)
        return self.quantizer(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) of images x; never updates the codebook."""
        self._check(x)
        z_e = self.encoder(x)
        B, D, h, w = z_e.shape
        return self.quantizer.nearest(z_e.permute(0, 2, 3, 1).reshape(-1, D)).view(B, h, w)

    def decoder_params(self, codes: torch.Tensor) -> Params:
        return self.head.params(self.decoder(self.quantizer.lookup(codes)))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> images (B, C, H, W) in [-1, 1]: the decoder's mean."""
        return self.head.mean(self.decoder_params(codes)).clamp(-1, 1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """-log p(x | z_q) per sub-pixel + beta * commitment (+ the codebook loss without EMA)."""
        x = batch["x"]
        z_q, codes, commitment, codebook_loss = self.quantize(x)
        recon = -self.head.log_prob(x, self.head.params(self.decoder(z_q)))  # (B,) nats
        usage = torch.bincount(codes.flatten(), minlength=self.quantizer.K).float()
        p = usage / usage.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        return {
            "loss": recon.mean() / self.spec.dim + self.config.beta * commitment + codebook_loss,
            "recon": recon.mean().detach(),
            "commitment": commitment.detach(),
            "perplexity": perplexity.detach(),
            "nll_bound": (recon.mean() + self.n_codes * math.log(self.quantizer.K)).detach(),
        }

    @torch.no_grad()
    def recon_nll(self, x: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(x | z_q(x)) per example (B,), nats."""
        codes = self.encode(x) if codes is None else codes
        return -self.head.log_prob(x, self.decoder_params(codes))

    @torch.no_grad()
    def nll_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        """-log p(x | z_q(x)) + h w log K: the ELBO of a one-hot posterior under the uniform prior, (B,) nats."""
        return self.recon_nll(x) + self.n_codes * math.log(self.quantizer.K)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """Decoded codes drawn uniformly: what the VQ-VAE alone generates (its prior is uniform); see vqvae_prior."""
        self.check_sample_kwargs(kwargs)
        dev = generator.device if generator is not None else torch.device("cpu")
        codes = torch.randint(self.quantizer.K, (n, *self.latent_shape), generator=generator, device=dev).to(self.device)
        return self.decode(codes)

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """Originals above their reconstructions."""
        x = batch["x"][:8]
        return {"reconstructions": (torch.cat([x, self.decode(self.encode(x))]), 8)}
