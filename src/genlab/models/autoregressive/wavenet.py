"""WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio"): dilated causal convolutions with
gated units, residual and skip connections, a 256-way softmax over mu-law codes and global conditioning on the label;
generation with a queue per layer (Paine et al. 2016, "Fast Wavenet Generation Algorithm")."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import DECODING_OPTIONS, at_least_float32, check_decoding, filter_logits, sample_categorical
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.nn.audio import WaveNetStack, mu_law_bin_widths, mu_law_decode, mu_law_encode
from genlab.registry import register_model
from genlab.spec import DataSpec

MU = 255  # 256 mu-law codes, as in the paper


@dataclass
class WaveNetConfig(ModelConfig):
    """A WaveNet over mu-law codes: `cycles` stacks of dilations 1, 2, ..., 2^(layers_per_cycle - 1)."""

    name: str = param("wavenet", help="model name")
    channels: int = param(64, ge=1, help="residual channels of each gated layer")
    skip_channels: int = param(128, ge=1, help="channels of the skip connections (summed over layers)")
    head_channels: int = param(0, ge=0, help="width of the 1x1 output layer before the 256-way softmax (0: skip_channels)")
    layers_per_cycle: int = param(10, ge=1, help="dilations 1, 2, ..., 2^(n - 1) per cycle (10: 1 ... 512)")
    cycles: int = param(2, ge=1, help="repetitions of the dilation cycle; receptive field = 1 + cycles (2^n - 1) samples")
    conditional: bool = param(False, help="class-conditional: global conditioning of every gated layer on the label")
    crop: int = param(
        0,
        ge=0,
        help="train on a random window of this many scored samples per batch (with receptive-field context; exact conditionals); "
        "0 = whole clips",
    )


@register_model("wavenet", WaveNetConfig)
class WaveNet(GenerativeModel):
    """log p(x | y) = sum_t log p(x_t | x_<t, y) over the mu-law codes of a waveform (B, 1, T) in [-1, 1].

    `log_prob` is a density on [-1, 1]^T, exact: each code k holds its bin of width w_k uniformly, so
    log p(x) = sum_t [log P(k_t | k_<t, y) - log w_{k_t}]; `code_log_prob` is the mass log P(k | y) of the codes, and
    `loss` logs it as bits per sample. Sampling draws code by code with temperature / top-k / top-p, carrying a queue
    of past activations per layer, so a second of audio costs T steps of O(layers) work.

    Example:
        >>> spec = DataSpec((1, 8000), num_classes=10, encoding="continuous", modality="waveform")
        >>> model = WaveNet(WaveNetConfig(channels=32, conditional=True), spec)
        >>> model.loss({"x": x, "y": y})["loss"].backward()
        >>> model.sample(10, labels=torch.arange(10), generator=torch.Generator().manual_seed(0), temperature=0.9)
    """

    family = "autoregressive"
    likelihood = "exact"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return DECODING_OPTIONS

    def __init__(self, config: WaveNetConfig, spec: DataSpec):
        super().__init__(config, spec)
        if len(spec.shape) != 2 or spec.shape[0] != 1 or spec.encoding == "tokens":
            raise ConfigError(f"WaveNet models mono waveforms of shape (1, T); the data have shape {spec.shape} ({spec.encoding})")
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        self.length = spec.shape[1]
        dilations = [2**i for _ in range(config.cycles) for i in range(config.layers_per_cycle)]
        K = spec.num_classes if self.conditional else 0
        self.net = WaveNetStack(MU + 1, config.channels, config.skip_channels, dilations, K, config.head_channels)

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        small = {"channels": 4, "skip_channels": 6, "layers_per_cycle": 3, "cycles": 1}
        return [
            (small, DataSpec((1, 12), encoding="continuous", modality="waveform")),
            (
                {**small, "cycles": 2, "conditional": True, "crop": 5},
                DataSpec((1, 16), num_classes=3, encoding="continuous", modality="waveform"),
            ),
        ]

    @property
    def receptive_field(self) -> int:
        return self.net.receptive_field

    # ------------------------------------------------------------- likelihood
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, 1, T) -> mu-law codes (B, T)."""
        if x.dim() != 3 or tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"expected waveforms of shape (B, 1, {self.length}), got {tuple(x.shape)}")
        return mu_law_encode(x[:, 0], MU)

    def logits(self, k: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, T) -> logits (B, 256, T) of p(k_t | k_<t, y), one pass (teacher forcing)."""
        start = torch.full_like(k[:, :1], MU + 1)
        return self.net(torch.cat([start, k[:, :-1]], dim=1), self.class_labels(y, len(k)))

    def code_log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log P(k | y) of the mu-law codes k of x, (B,), in nats: a probability mass over 256^T sequences."""
        k = self.codes(x)
        return -F.cross_entropy(at_least_float32(self.logits(k, y)), k, reduction="none").sum(1)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x | y) per example, (B,), nats: the density of the piecewise-uniform model over the mu-law bins."""
        k = self.codes(x)
        lp = -F.cross_entropy(at_least_float32(self.logits(k, y)), k, reduction="none")
        log_w = mu_law_bin_widths(MU).log().to(lp.device, lp.dtype)  # float64 first: the widths near 0 are ~1e-4
        return (lp - log_w[k]).sum(1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Cross-entropy of the codes per sample (nats), over whole clips or a random window of `crop` samples whose
        context of receptive_field - 1 samples is given but not scored (so each scored conditional is exact)."""
        k = self.codes(batch["x"])
        T, crop = k.shape[1], self.config.crop
        prev = torch.cat([torch.full_like(k[:, :1], MU + 1), k[:, :-1]], dim=1)
        if 0 < crop < T:
            s = int(torch.randint(0, T - crop + 1, ()))
            a = max(0, s - (self.receptive_field - 1))
            logits = self.net(prev[:, a : s + crop], self.class_labels(batch.get("y"), len(k)))[:, :, s - a :]
            k = k[:, s : s + crop]
        else:
            logits = self.net(prev, self.class_labels(batch.get("y"), len(k)))
        nll = F.cross_entropy(at_least_float32(logits), k)
        return {"loss": nll, "bits_per_sample": nll.detach() / math.log(2)}

    # --------------------------------------------------------------- sampling
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
        """n waveforms (n, 1, T) in [-1, 1], drawn code by code from p(k_t | k_<t, y)^(1/T) / Z (temperature T; top-k,
        top-p keep the likeliest codes) with the cached activations of `WaveNetStack.step`; each code is decoded to
        its bin centre. Exactly the draws of `sample_naive` (a full pass per step) for the same generator."""
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        check_decoding(temperature, top_k, top_p)
        like = self.net.embed.weight
        cond = self.net.cond_vectors(self.class_labels(labels, n))
        queues = self.net.start_queues(n, like)
        prev = torch.full((n,), MU + 1, dtype=torch.long, device=like.device)
        out = torch.empty(n, self.length, dtype=torch.long, device=like.device)
        for t in range(self.length):
            logits = filter_logits(at_least_float32(self.net.step(prev, t, queues, cond)), temperature, top_k, top_p)
            prev = out[:, t] = sample_categorical(logits, generator)
        return mu_law_decode(out, MU, like.dtype)[:, None]

    @torch.no_grad()
    def sample_naive(
        self,
        n: int,
        *,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """`sample` by recomputing the whole network over the past at every step (O(T^2)): the reference for the cache."""
        self.check_sample_labels(labels)
        y = self.class_labels(labels, n)
        like = self.net.embed.weight
        prev = torch.full((n, self.length), MU + 1, dtype=torch.long, device=like.device)
        out = torch.empty(n, self.length, dtype=torch.long, device=like.device)
        for t in range(self.length):
            logits = filter_logits(at_least_float32(self.net(prev[:, : t + 1], y)[:, :, t]), temperature, top_k, top_p)
            out[:, t] = sample_categorical(logits, generator)
            if t + 1 < self.length:
                prev[:, t + 1] = out[:, t]
        return mu_law_decode(out, MU, like.dtype)[:, None]
