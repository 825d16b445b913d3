"""Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"): masked
vertical and horizontal stacks without a blind spot, gated units and class conditioning, with a 256-way softmax,
a discretised logistic mixture (Salimans et al. 2017, PixelCNN++) or a Bernoulli per sub-pixel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.autoregressive.decoding import DECODING_OPTIONS, check_decoding, sample_categorical, sample_levels
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.distributions import BernoulliHead, DiscretizedLogisticMixtureHead, LikelihoodHead, Params
from genlab.nn.masked import GatedPixelCNN, assert_causal
from genlab.registry import register_model
from genlab.spec import DataSpec

Head = Literal["softmax", "logistic_mixture", "bernoulli"]


class SoftmaxHead(LikelihoodHead):
    """A 256-way categorical per sub-pixel (van den Oord et al. 2016a); params = (logits (B, 256, C, H, W),)."""

    def __init__(self, shape: tuple[int, ...], bins: int = 256):
        super().__init__(shape)
        self.bins = bins
        self.params_per_dim = bins

    def params(self, h: torch.Tensor) -> Params:
        return (h.view(h.shape[0], self.bins, -1, *h.shape[2:]),)  # channel p * C + c holds level p of colour c

    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Values on the bin centres of [-1, 1] -> their level 0..bins-1."""
        return torch.round((x + 1) * (self.bins - 1) / 2).long().clamp(0, self.bins - 1)

    def log_prob_elementwise(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return -F.cross_entropy(params[0], self.index(x), reduction="none")

    def mean(self, params: Params) -> torch.Tensor:
        levels = torch.linspace(-1, 1, self.bins, device=params[0].device, dtype=params[0].dtype)
        return torch.einsum("bk...,k->b...", torch.softmax(params[0], dim=1), levels)

    def sample(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        k = sample_categorical(params[0].movedim(1, -1), generator)
        return k.to(params[0].dtype) * (2 / (self.bins - 1)) - 1


@dataclass
class PixelCNNConfig(ModelConfig):
    """A Gated PixelCNN over the sub-pixels of an image in raster order (rows, columns, then R, G, B)."""

    name: str = param("pixelcnn", help="model name")
    channels: int = param(64, ge=1, help="feature channels of each stack (a multiple of the image channels)")
    n_layers: int = param(8, ge=1, help="gated layers; each adds a row above and a pixel to the left to the receptive field")
    kernel_size: int = param(3, ge=1, help="odd kernel width of the gated layers after the first")
    first_kernel_size: int = param(7, ge=1, help="odd kernel width of the first (mask A) layer")
    head_channels: int = param(0, ge=0, help="width of the 1x1 output layers (0: channels)")
    head: Literal["auto", "softmax", "logistic_mixture", "bernoulli"] = param(
        "auto", help="p(x_i | x_<i): auto = bernoulli for binary data, logistic_mixture for 8-bit data; softmax = 256-way"
    )
    n_mix: int = param(5, ge=1, help="logistic_mixture: components per sub-pixel")
    conditional: bool = param(False, help="class-conditional: a learned class embedding biases every gated layer")
    cond_dim: int = param(32, ge=1, help="size of the class embedding")


def resolve_head(cfg: PixelCNNConfig, spec: DataSpec) -> Head:
    """The likelihood head a config means on data `spec`, or a ConfigError naming the key to change."""
    if not spec.is_image:
        raise ConfigError(f"a PixelCNN models images (C, H, W); the data have shape {spec.shape} ({spec.encoding})")
    if spec.encoding == "continuous":
        raise ConfigError("a PixelCNN models discrete pixels (8-bit or binary); these data are continuous")
    head = cfg.head
    if head == "auto":
        head = "bernoulli" if spec.encoding == "binary" else "logistic_mixture"
    if head == "bernoulli" and spec.encoding != "binary":
        raise ConfigError(
            "model.head='bernoulli' models binary pixels, but the data are 8-bit; set data.binarize=true (or model.head='auto')"
        )
    if head != "bernoulli" and spec.encoding == "binary":
        raise ConfigError(f"model.head={head!r} models 256 levels, but the data are binarised; set model.head='bernoulli' (or 'auto')")
    if spec.encoding == "8bit" and spec.dequantized:
        raise ConfigError(
            "a PixelCNN gives the probability of the 8-bit values themselves, but the data are dequantised; set data.dequantize=false"
        )
    if cfg.channels % spec.shape[0]:
        raise ConfigError(f"model.channels={cfg.channels} must be a multiple of the {spec.shape[0]} image channels (one group per colour)")
    for key in ("kernel_size", "first_kernel_size"):
        if getattr(cfg, key) % 2 == 0:
            raise ConfigError(f"model.{key}={getattr(cfg, key)}: expected an odd kernel width, e.g. 3 or 7")
    if cfg.conditional and spec.num_classes == 0:
        raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
    return head


def make_head(head: Head, cfg: PixelCNNConfig, spec: DataSpec) -> LikelihoodHead:
    if head == "bernoulli":
        return BernoulliHead(spec.shape)
    if head == "softmax":
        return SoftmaxHead(spec.shape)
    return DiscretizedLogisticMixtureHead(spec.shape, cfg.n_mix)


@register_model("pixelcnn", PixelCNNConfig)
class PixelCNN(GenerativeModel):
    """log p(x | y) = sum_i log p(x_i | x_<i, y) over sub-pixels in raster order, exact, in nats.

    Example:
        >>> spec = DataSpec(shape=(1, 28, 28), encoding="binary")
        >>> model = PixelCNN(PixelCNNConfig(channels=32, n_layers=6), spec)
        >>> model.loss({"x": x})["loss"].backward()
        >>> model.log_prob(x)                                     # (B,) nats
        >>> model.sample(16, generator=torch.Generator().manual_seed(0))
    """

    family = "autoregressive"
    likelihood = "exact"

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return DECODING_OPTIONS

    def __init__(self, config: PixelCNNConfig, spec: DataSpec):
        super().__init__(config, spec)
        self.head_kind = resolve_head(config, spec)
        self.head = make_head(self.head_kind, config, spec)
        C = spec.shape[0]
        self.embed = nn.Embedding(spec.num_classes, config.cond_dim) if self.conditional else None
        self.net = GatedPixelCNN(
            C,
            self.head.params_per_dim * C,
            channels=config.channels,
            n_layers=config.n_layers,
            kernel_size=config.kernel_size,
            first_kernel_size=config.first_kernel_size,
            groups=C,
            cond_dim=config.cond_dim if self.conditional else 0,
            head_channels=config.head_channels or None,
        )
        # The masks are the whole model: check that no output sees its own or a later sub-pixel before training.
        assert_causal(self.net, (C, min(8, spec.shape[1]), min(8, spec.shape[2])), groups=C)

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"channels": 8, "n_layers": 2, "head": "softmax"}, DataSpec((1, 6, 6), encoding="8bit")),
            ({"channels": 8, "n_layers": 2, "conditional": True, "cond_dim": 4}, DataSpec((1, 6, 6), num_classes=3, encoding="binary")),
            ({"channels": 6, "n_layers": 2, "n_mix": 2, "conditional": True, "cond_dim": 4}, DataSpec((3, 5, 5), num_classes=2)),
        ]

    def _cond(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        y = self.class_labels(y, n)
        return None if y is None else self.embed(y)

    def params(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Params:
        """The head's parameters of p(x_i | x_<i, y) at every sub-pixel i, from one pass over x."""
        if tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, self.spec.shape))}), got {tuple(x.shape)}")
        return self.head.params(self.net(x, self._cond(y, x.shape[0])))

    def conditionals(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x_i | x_<i, y) for every sub-pixel, (B, C, H, W): they sum to `log_prob`."""
        return self.head.log_prob_elementwise(x, self.params(x, y))

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log P(x | y) per image, (B,), in nats: of the 8-bit integers (not dequantised) or of the binary pixels."""
        return self.conditionals(x, y).flatten(1).sum(1)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        """Negative log-likelihood per sub-pixel (batch mean); `nll` is per image."""
        nll = -self.log_prob(batch["x"], batch.get("y"))
        return {"loss": nll.mean() / self.spec.dim, "nll": nll.mean().detach()}

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
        """n images drawn sub-pixel by sub-pixel, batched: H * W * C network passes, each over the window of the
        image that the current pixel's receptive field covers (exactly what a pass over the whole image gives).

        `temperature` T draws each sub-pixel from p(x_i | x_<i)^(1/T) / Z over its discrete levels (T < 1 sharpens,
        T -> 0 is greedy decoding); `top_k` / `top_p` keep only the likeliest levels. With the defaults the head's
        own sampler runs (the same draws as before these options existed)."""
        self.check_sample_kwargs(kwargs)
        self.check_sample_labels(labels)
        check_decoding(temperature, top_k, top_p)
        plain = temperature == 1.0 and top_k is None and top_p is None
        bins = 2 if self.head_kind == "bernoulli" else getattr(self.head, "bins", 256)
        levels = torch.linspace(-1, 1, bins, device=self.device)
        C, H, W = self.spec.shape
        c = self._cond(labels, n)
        x = torch.zeros(n, C, H, W, device=self.device, dtype=next(self.net.parameters()).dtype)
        up, side = self.net.receptive_field
        for i in range(H):
            for j in range(W):
                # The output at (i, j) sees only the window of its receptive field: run the network on that alone.
                r0, c0, c1 = max(0, i - up), max(0, j - side), min(W, j + side + 1)
                h = self.net(x[:, :, r0 : i + 1, c0:c1], c)[:, :, -1, j - c0]  # (n, P * C)
                full = h.new_zeros(n, h.shape[1], H, W)
                full[:, :, i, j] = h
                params = self.head.params(full)
                for ch in range(C):
                    if ch:  # a later colour of the same pixel sees the ones just drawn
                        h = self.net(x[:, :, r0 : i + 1, c0:c1], c)[:, :, -1, j - c0]
                        full[:, :, i, j] = h
                        params = self.head.params(full)
                    at = tuple(p[..., ch : ch + 1, i : i + 1, j : j + 1] for p in params)
                    if plain:
                        x[:, ch, i, j] = self.head.sample(at, generator).view(n)
                    else:
                        x[:, ch, i, j] = sample_levels(self.head, at, levels, generator, temperature, top_k, top_p)
        return x
