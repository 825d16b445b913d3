"""A token model of video (Yan et al. 2021, "VideoGPT"; van den Oord et al. 2017 for the codes): a VQ-VAE turns each
frame into a grid of discrete codes, and a causal Transformer learns p(codes of the clip) over the frames' code grids
in raster order (frame, row, column). Prediction is continuation: the given frames' codes are the prefix."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

import torch

from genlab.config import param
from genlab.data.video import read_clips
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import DECODING_OPTIONS, at_least_float32, check_decoding, start_tokens
from genlab.models.autoregressive.transformer import generate
from genlab.models.base import Batch, GenerativeModel, Phase, SampleOption
from genlab.models.vae.vqvae import VQVAE, VQVAEConfig
from genlab.models.video.predictor import context_clips
from genlab.nn.transformer import CausalTransformer
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class VideoGPTConfig(VQVAEConfig):
    """The per-frame VQ-VAE's keys (`channels`, `blocks`, `codebook_size`, `code_dim`, ...), the Transformer prior's
    (prior_*), and the frames a prediction is given."""

    name: str = param("video_gpt", help="model name")
    channels: tuple[int, ...] = param((32, 64, 64), ge=1, help="vq-vae: widths per level; each level halves the frame (32 -> 4 at 3)")
    codebook_size: int = param(256, ge=2, help="K, the number of codes")
    code_dim: int = param(32, ge=1, help="D, the size of each code vector")
    prior_start: float = param(0.3, ge=0, lt=1, help="fraction of the training budget after which the prior starts training")
    prior_d_model: int = param(128, ge=1, help="transformer prior: width")
    prior_layers: int = param(4, ge=1, help="transformer prior: blocks")
    prior_heads: int = param(4, ge=1, help="transformer prior: attention heads")
    prior_positions: Literal["learned", "rope"] = param("learned", help="transformer prior: position encoding over the clip's tokens")
    prior_dropout: float = param(0.0, ge=0, lt=1, help="transformer prior: dropout while training")
    conditional: bool = param(False, help="class-conditional prior p(codes | y): the start token is the class")
    context_frames: int = param(0, ge=0, help="C, the frames `genlab eval` gives for prediction (0: eval scores generation)")


@register_model("video_gpt", VideoGPTConfig)
class VideoGPT(GenerativeModel):
    """Clips (T, C, H, W) with per-frame codes z_t (h x w out of K) and
        -log p(x) <= sum_t -log p(x_t | z_t) - log p_prior(z_1, ..., z_T | y),
    the bound of a one-hot posterior z = z_q(x) (as `vqvae_prior`, per frame). `sample(n)` draws whole clips;
    `sample(n, context=clips)` encodes the given frames and draws the rest of the tokens after them.

    >>> model = VideoGPT(VideoGPTConfig(channels=(8, 8), codebook_size=16, code_dim=4, prior_d_model=16, prior_layers=1,
    ...                                  prior_heads=2), DataSpec((4, 1, 16, 16), modality="video"))
    >>> model.sample(2, context=torch.zeros(2, 2, 1, 16, 16)).shape
    torch.Size([2, 4, 1, 16, 16])
    """

    family = "autoregressive"
    likelihood = "bound"
    bound_name = "ELBO, one-hot posterior per frame, Transformer prior over the clip's codes"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (
            *DECODING_OPTIONS,
            SampleOption("context", str, "video prediction: the given frames, an .npz of uint8 clips (N, T, 1, H, W) or a .gif"),
        )

    def __init__(self, config: VideoGPTConfig, spec: DataSpec):
        super().__init__(config, spec)
        if len(spec.shape) != 4:
            raise ConfigError(f"video_gpt models clips (T, C, H, W); the data have shape {spec.shape}")
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        if config.prior_d_model % config.prior_heads:
            raise ConfigError(f"model.prior_d_model={config.prior_d_model} must be a multiple of model.prior_heads={config.prior_heads}")
        T = spec.shape[0]
        if config.context_frames >= T:
            raise ConfigError(f"model.context_frames={config.context_frames}: expected 0..{T - 1} for clips of {T} frames")
        self.context_frames = config.context_frames
        frame = DataSpec(spec.shape[1:], encoding=spec.encoding, dequantized=spec.dequantized, modality="image")
        self.vqvae = VQVAE(config, frame)
        self.codes_per_frame = self.vqvae.n_codes
        self.prior_net = CausalTransformer(
            config.codebook_size,
            T * self.codes_per_frame,
            config.prior_d_model,
            config.prior_layers,
            config.prior_heads,
            config.prior_positions,
            n_starts=spec.num_classes if self.conditional else 1,
            dropout=config.prior_dropout,
        )

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        small = {"channels": [8], "blocks": 0, "codebook_size": 8, "code_dim": 4, "prior_d_model": 16, "prior_layers": 1, "prior_heads": 2}
        return [
            (small, DataSpec((3, 1, 8, 8), modality="video")),
            ({**small, "conditional": True, "context_frames": 1}, DataSpec((3, 1, 8, 8), num_classes=3, modality="video")),
        ]

    def phases(self) -> list[Phase]:
        return [
            Phase("vqvae", self.vqvae.parameters()),
            Phase("prior", self.prior_net.parameters(), start_fraction=self.config.prior_start),
        ]

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or tuple(x.shape[2:]) != self.spec.shape[1:] or x.shape[1] > self.spec.shape[0]:
            raise ValueError(
                f"expected clips (B, <= {self.spec.shape[0]}, {', '.join(map(str, self.spec.shape[1:]))}), got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (B, t, C, H, W) in [-1, 1] -> their tokens (B, t h w), frame by frame in raster order."""
        self._check(x)
        return self.vqvae.encode(x.flatten(0, 1)).reshape(len(x), -1)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, t h w) -> clips (B, t, C, H, W) in [-1, 1], each frame the decoder's mean."""
        h, w = self.vqvae.latent_shape
        frames = self.vqvae.decode(tokens.reshape(-1, h, w))
        return frames.reshape(len(tokens), -1, *self.spec.shape[1:])

    def prior_log_prob(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p_prior(tokens | y) per clip (B,), nats."""
        logp = torch.log_softmax(at_least_float32(self.prior_net.logits(tokens, start_tokens(self, y, len(tokens)))), dim=-1)
        return logp.gather(-1, tokens[..., None])[..., 0].sum(1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """phase "vqvae": the VQ-VAE's loss on every frame; phase "prior": -log p_prior(tokens of the clip) per token;
        None: both."""
        x = batch["x"]
        self._check(x)
        out: dict[str, torch.Tensor] = {}
        if phase in (None, "vqvae"):
            out = self.vqvae.loss({"x": x.flatten(0, 1)})
        if phase in (None, "prior"):
            tokens = self.encode(x)  # no gradient into the VQ-VAE, no codebook update
            nll = -self.prior_log_prob(tokens, batch.get("y"))
            out = {**out, "loss": out.get("loss", 0.0) + nll.mean() / tokens.shape[1], "prior_nll": nll.mean().detach()}
        if not out:
            raise ValueError(f"unknown phase {phase!r}: expected 'vqvae' or 'prior'")
        return out

    @torch.no_grad()
    def nll_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        """sum_t -log p(x_t | z_q(x_t)) - log p_prior(z_q(x) | y), (B,) nats."""
        tokens = self.encode(x)
        h, w = self.vqvae.latent_shape
        recon = self.vqvae.recon_nll(x.flatten(0, 1), tokens.reshape(-1, h, w)).reshape(len(x), -1).sum(1)
        return recon - self.prior_log_prob(tokens, y)

    def given_frames(self, context: torch.Tensor | str | os.PathLike, n: int) -> torch.Tensor:
        """The given frames (n, C', C, H, W) of `context`: its first model.context_frames frames, or with
        context_frames = 0 all of its frames (at most T - 1)."""
        frames = self.context_frames
        if not frames:
            clips = read_clips(context) if isinstance(context, (str, os.PathLike)) else context
            frames, context = min(clips.shape[1], self.spec.shape[0] - 1), clips
        return context_clips(context, n, self.spec, frames, self.device, type(self).__name__)

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
        context: torch.Tensor | str | os.PathLike | None = None,
    ) -> torch.Tensor:
        """n clips (n, T, C, H, W) in [-1, 1], tokens drawn one at a time through the KV cache (with `temperature`,
        `top_k`, `top_p`); with `context`, its frames are kept and the tokens after theirs drawn."""
        self.check_sample_labels(labels)
        check_decoding(temperature, top_k, top_p)
        given = None if context is None else self.given_frames(context, n)
        prefix = None if given is None else self.encode(given)
        length = self.spec.shape[0] * self.codes_per_frame
        s = start_tokens(self, labels, n)
        tokens = generate(
            self.prior_net, n, length, s, generator=generator, temperature=temperature, top_k=top_k, top_p=top_p, prefix=prefix
        )
        clips = self.decode(tokens)
        if given is not None:
            clips[:, : given.shape[1]] = given.to(clips.dtype)
        return clips

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """The frames of two clips above their reconstructions."""
        x = batch["x"][:2]
        T = x.shape[1]
        return {"reconstructions": (torch.cat([x.flatten(0, 1), self.decode(self.encode(x)).flatten(0, 1)]), T)}

    def contract_sample_kwargs(self, n: int) -> dict:
        """With given frames, the contract's samples continue n fixed random clips."""
        if not self.context_frames:
            return {}
        g = torch.Generator().manual_seed(n)
        return {"context": torch.rand((n, self.context_frames, *self.spec.shape[1:]), generator=g) * 2 - 1}

    def diagnose(self, row: dict[str, float]) -> str | None:
        """A codebook that collapsed to a few codes cannot show moving objects: say so."""
        p = row.get("perplexity")
        if p is not None and p < 0.05 * self.config.codebook_size and math.isfinite(p):
            K = self.config.codebook_size
            return f"the codebook uses about {p:.0f} of {K} codes; raise model.dead_code_threshold or lower model.codebook_size"
        return None
