"""What every normalizing flow shares: the change of variables log p(x) = log p_Z(f(x)) + log|det df/dx|
(Rezende & Mohamed 2015; Dinh et al. 2017), a (class-conditional) Gaussian base, temperature sampling,
dequantisation of 8-bit images and the multi-scale architecture for images (squeeze, steps, split)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.models.base import Batch, GenerativeModel, SampleOption
from genlab.models.distributions import LOG_2PI
from genlab.models.flow.transforms import (
    Squeeze,
    Transform,
    UniformDequantization,
    VariationalDequantization,
)
from genlab.noise import randn
from genlab.spec import DataSpec

Tensor = torch.Tensor
Condition = Literal["base", "coupling", "both"]


class MultiScaleFlow(Transform):
    """Multi-scale image flow (Dinh et al. 2017, Kingma & Dhariwal 2018): at each level squeeze 2x2 -> run the level's
    steps -> factor out half of the channels to the base (except at the last level). Maps (B, C, H, W) to a flat
    z (B, C*H*W), the factored-out parts first; `levels[i]` is a Transform on the squeezed shape of level i."""

    def __init__(self, shape: Sequence[int], levels: Sequence[Transform], pre: Sequence[Transform] = ()):
        super().__init__()
        C, H, W = shape
        self.pre = nn.ModuleList(pre)  # one Transform per level, run at the level's resolution before its squeeze
        self.levels = nn.ModuleList(levels)
        self.squeeze = Squeeze()
        self.shapes: list[tuple[int, int, int]] = []  # shape of each factored-out piece, then of the final z
        for i in range(len(levels)):
            if H % 2 or W % 2:
                raise ValueError(f"level {i + 1} squeezes {H}x{W}, which is not divisible by 2")
            C, H, W = 4 * C, H // 2, W // 2
            if i < len(levels) - 1:
                self.shapes.append((C // 2, H, W))
                C = C - C // 2
        self.shapes.append((C, H, W))

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total, out = x.new_zeros(x.shape[0]), []
        for i, level in enumerate(self.levels):
            if self.pre:
                x, ld = self.pre[i](x, context)
                total = total + ld
            x, _ = self.squeeze(x)
            x, ld = level(x, context)
            total = total + ld
            if i < len(self.levels) - 1:
                c = x.shape[1] // 2
                out.append(x[:, :c].flatten(1))
                x = x[:, c:]
        out.append(x.flatten(1))
        return torch.cat(out, dim=1), total

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        sizes = [math.prod(s) for s in self.shapes]
        pieces = [p.view(z.shape[0], *s) for p, s in zip(z.split(sizes, dim=1), self.shapes)]
        x, total = pieces[-1], z.new_zeros(z.shape[0])
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                x = torch.cat([pieces[i], x], dim=1)
            x, ld = self.levels[i].inverse(x, context)
            total = total + ld
            x, _ = self.squeeze.inverse(x)
            if self.pre:
                x, ld = self.pre[i].inverse(x, context)
                total = total + ld
        return x, total


def image_levels(spec: DataSpec, levels: int, key: str = "model.levels") -> int:
    """The number of multi-scale levels for this image size (0 = as many as the size allows, at most 3), or a ConfigError."""
    C, H, W = spec.shape
    if levels == 0:
        levels, h, w = 0, H, W
        while h % 2 == 0 and w % 2 == 0 and levels < 3 and min(h, w) > 4:
            levels, h, w = levels + 1, h // 2, w // 2
        if levels == 0:
            raise ConfigError(
                f"{key}: images of {H}x{W} cannot be squeezed (height and width must be even); pad or resize them (data.pad_to)"
            )
    h, w = H, W
    for i in range(levels):
        if h % 2 or w % 2:
            raise ConfigError(
                f"{key}={levels}: level {i + 1} would squeeze {h}x{w} images, but a squeeze halves height and width and "
                f"needs both even; use {key}={i} or fewer, or pad/resize the images (e.g. data.pad_to=32)"
            )
        h, w = h // 2, w // 2
    return levels


@dataclass
class FlowConfig(ModelConfig):
    """What every flow's config has: class conditioning and, for 8-bit data left quantised, the dequantisation."""

    conditional: bool = param(False, help="class-conditional flow (labels required)")
    condition: Condition = param(
        "both", help="conditional: the class enters the base distribution (a mean and scale per class), the transforms' nets, or both"
    )
    dequantization: Literal["uniform", "variational"] = param(
        "uniform", help="8-bit data with data.dequantize=false: the flow dequantises them itself (a bound); variational = Flow++"
    )


class FlowModel(GenerativeModel):
    """Base of the flow family: subclasses build `self.flow` (a Transform from data x to a flat z of dim D) in
    __init__ and call `self._setup_base()`. log p(x | y) = log N(z; mu_y, diag sigma_y^2) + log|det dz/dx|, where the
    base is N(0, I) unless the model is class-conditional through the base (a learned mean and scale per class).

    8-bit images come dequantised by the data pipeline (data.dequantize=true): `log_prob` is then the exact density
    on [-1, 1) and the harness adds D ln 128. With data.dequantize=false the flow dequantises them itself (uniform or
    variational) and reports the bound -log P(x_int) <= E_q[-log p(x) + D ln 128 + log q(u | x_int)].
    """

    family = "flow"
    likelihood = "exact"
    bound_name = ""
    flow: Transform

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        return (SampleOption("temperature", float, "scale of the base density's standard deviation"),)

    config: FlowConfig

    def __init__(self, config: FlowConfig, spec: DataSpec):
        super().__init__(config, spec)
        if spec.encoding == "binary":
            raise ConfigError(
                f"model.name={config.name!r}: a flow is a density over continuous values, but the data are binarised; "
                "set data.binarize=false (8-bit images are dequantised)"
            )
        if config.conditional and spec.num_classes == 0:
            raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
        self.dequantizer: nn.Module | None = None
        if spec.encoding == "8bit" and not spec.dequantized:
            kind = config.dequantization
            self.dequantizer = VariationalDequantization(spec.shape[0]) if kind == "variational" else UniformDequantization()
            self.likelihood = "bound"
            self.bound_name = f"{kind} dequantisation"
        elif config.dequantization == "variational":
            raise ConfigError(
                "model.dequantization='variational' learns the dequantisation noise of 8-bit pixels, but the data are "
                f"{'already dequantised' if spec.dequantized else 'not 8-bit images'}; "
                "set data.dequantize=false (or model.dequantization='uniform')"
            )

    @property
    def condition(self) -> Condition:
        return self.config.condition

    @property
    def context_dim(self) -> int:
        """Size of the context vector the transforms see: the one-hot class when conditioning through the nets."""
        return self.spec.num_classes if self.conditional and self.condition in ("coupling", "both") else 0

    def _setup_base(self) -> None:
        D = self.spec.dim
        if self.conditional and self.condition in ("base", "both"):
            self.base_mean = nn.Parameter(torch.zeros(self.spec.num_classes, D))
            self.base_log_scale = nn.Parameter(torch.zeros(self.spec.num_classes, D))
        else:
            self.base_mean = self.base_log_scale = None

    def _context(self, y: Tensor | None, like: Tensor) -> Tensor | None:
        return F.one_hot(y, self.spec.num_classes).to(like.dtype) if y is not None and self.context_dim else None

    def _base(self, y: Tensor | None, like: Tensor) -> tuple[Tensor, Tensor] | None:
        if self.base_mean is None or y is None:
            return None
        return self.base_mean[y].to(like.dtype), self.base_log_scale[y].to(like.dtype)

    def _check_input(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"expected inputs of shape (B, {', '.join(map(str, self.spec.shape))}), got {tuple(x.shape)}")

    def log_prob_continuous(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | y) in nats per example, (B,), for x on the model's continuous scale (dequantised images in [-1, 1))."""
        self._check_input(x)
        y = self.class_labels(y, x.shape[0])
        z, log_det = self.flow(x, self._context(y, x))
        base = self._base(y, z)
        if base is None:
            log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(1)
        else:
            mu, ls = base
            log_pz = (-0.5 * ((z - mu) * torch.exp(-ls)).pow(2) - ls - 0.5 * LOG_2PI).sum(1)
        return log_pz + log_det

    def _dequantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (8-bit levels x_int / 127.5 - 1) -> dequantised x in [-1, 1) and log q(u | x_int)."""
        return self.dequantizer(x)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.dequantizer is not None:
            raise NotImplementedError(
                f"{type(self).__name__} on 8-bit data that are not dequantised gives a bound: use nll_bound (or set data.dequantize=true)"
            )
        return self.log_prob_continuous(x, y)

    def nll_bound(self, x: Tensor, y: Tensor | None = None, k: int = 1) -> Tensor:
        """-log P(x_int) <= -log (1/k) sum_i p(x_int + u_i) / (128^D q(u_i | x_int)), u_i ~ q: the dequantisation bound
        (Ho et al. 2019), importance-weighted over k draws (k = 1: E_q[-log p + D ln 128 + log q])."""
        if self.dequantizer is None:
            return -self.log_prob(x, y)
        log_w = []
        for _ in range(k):
            xd, log_q = self._dequantize(x)
            log_w.append(self.log_prob_continuous(xd, y) - self.spec.dim * math.log(128.0) - log_q)
        return math.log(k) - torch.logsumexp(torch.stack(log_w), dim=0)

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, Tensor]:
        """Mean NLL per dimension (nats); logs the NLL per example and its bits/dim-free value."""
        x, y = batch["x"], batch.get("y")
        self.check_data(x)
        nll = self.nll_bound(x, y) if self.dequantizer is not None else -self.log_prob_continuous(x, y)
        return {"loss": nll.mean() / self.spec.dim, "nll": nll.mean().detach()}

    def check_data(self, x: Tensor) -> None:
        """Checks of the training data a model can only make on a batch (e.g. a spline bound); none by default."""

    @torch.no_grad()
    def sample(
        self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None, temperature: float = 1.0, **kwargs
    ) -> Tensor:
        """n examples x = f^{-1}(z), z ~ N(mu_y, (temperature * sigma_y)^2) (temperature < 1 trades diversity for quality)."""
        self.check_sample_kwargs(kwargs)
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.check_sample_labels(labels)
        like = next(self.parameters())
        y = self.class_labels(labels, n)
        z = temperature * randn((n, self.spec.dim), like, generator)
        base = self._base(y, z)
        if base is not None:
            z = base[0] + torch.exp(base[1]) * z
        x, _ = self.flow.inverse(z, self._context(y, z))
        x = x.view(n, *self.spec.shape)
        return x.clamp(-1, 1) if self.spec.is_image else x

    @torch.no_grad()
    def figures(self, batch: Batch) -> dict[str, tuple[Tensor, int]]:
        """Images: samples at temperatures 0.5, 0.7, 0.85, 1 (one row each). 2D data: the model's density on a grid."""
        if self.spec.is_image:
            rows = []
            for t in (0.5, 0.7, 0.85, 1.0):
                labels = self.sample_labels(10)
                rows.append(self.sample(10, labels=labels, generator=torch.Generator().manual_seed(0), temperature=t))
            return {"temperatures": (torch.cat(rows), 10)}
        if self.spec.shape == (2,) and not self.conditional:
            from genlab.models.flow.density import density_image

            return {"density": (density_image(self.log_prob, lim=4.5, n=200)[None], 1)}
        return {}
