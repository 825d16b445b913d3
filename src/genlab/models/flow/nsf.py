"""Neural spline flows (Durkan et al. 2019): monotonic rational-quadratic splines with K bins on [-B, B] and identity
tails, their knots and derivatives from a coupling MLP (NSF-C) or a MADE (NSF-AR, autoregressive)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.flow.base import FlowConfig, FlowModel
from genlab.models.flow.realnvp import check_vector_dim, mlp_net
from genlab.models.flow.transforms import Autoregressive, Compose, Coupling, Permutation, SplineMap
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class NSFConfig(FlowConfig):
    """Neural spline flow for vectors: spline couplings or autoregressive splines."""

    name: str = param("nsf", help="model name")
    variant: Literal["coupling", "autoregressive"] = param("coupling", help="coupling (one-pass sampling) or autoregressive (D passes)")
    layers: int = param(4, ge=1, help="spline layers")
    hidden: tuple[int, ...] = param((128, 128), ge=1, help="hidden widths of each coupling MLP / MADE")
    bins: int = param(8, ge=2, help="spline bins K on [-bound, bound]: the resolution (sharp modes and edges need more, e.g. 16)")
    bound: float = param(5.0, gt=0, help="the splines act on [-bound, bound] (identity outside); the data must lie inside")

    def validate(self) -> None:
        if self.variant == "autoregressive" and not self.hidden:
            raise ConfigError("model.hidden: a MADE needs at least one hidden layer, e.g. [128, 128]")


@register_model("nsf", NSFConfig)
class NSF(FlowModel):
    """Neural spline flow.

    Example:
        >>> flow = NSF(NSFConfig(variant="coupling", bins=8, bound=5.0), DataSpec((2,), encoding="continuous"))
        >>> x = flow.sample(1000)
        >>> flow.log_prob(x).mean()
    """

    def __init__(self, config: NSFConfig, spec: DataSpec):
        super().__init__(config, spec)
        check_vector_dim(spec, "nsf")
        D = spec.dim
        g = SplineMap(config.bins, config.bound)
        layers = []
        gen = torch.Generator().manual_seed(0)
        for i in range(config.layers):
            if config.variant == "coupling":
                if D < 2:
                    raise ConfigError(
                        f"model.variant='coupling' splits the features in two, which needs at least 2, got {D}; use 'autoregressive'"
                    )
                if D > 2 and i > 0:
                    layers.append(Permutation(D, "random", gen))
                layers.append(Coupling(D, mlp_net(config.hidden, self.context_dim), g, swap=i % 2 == 1))
            else:
                order = torch.arange(1, D + 1) if i % 2 == 0 else torch.arange(D, 0, -1)
                layers.append(Autoregressive(D, g, config.hidden, self.context_dim, order))
        self.flow = Compose(layers)
        self._setup_base()

    def check_data(self, x: torch.Tensor) -> None:
        """The splines only move [-bound, bound]: data outside would pass through the identity tails unmodelled."""
        if not self.training or getattr(self, "_data_checked", False):
            return
        self._data_checked = True
        m = float(x.detach().abs().max())
        if m > self.config.bound:
            raise ConfigError(
                f"model.bound={self.config.bound}: the training data reach |x| = {m:.3g}, outside the splines' interval "
                f"[-{self.config.bound}, {self.config.bound}] (identity there, so unmodelled); "
                f"set model.bound={2 * m:.3g} or standardise the data"
            )

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"layers": 2, "hidden": [16], "bins": 4}, DataSpec((2,), encoding="continuous")),
            ({"layers": 2, "hidden": [16], "bins": 4, "variant": "autoregressive", "conditional": True}, DataSpec((3,), 3, "continuous")),
            ({"layers": 3, "hidden": [16], "bins": 4, "conditional": True, "condition": "coupling"}, DataSpec((4,), 2, "continuous")),
        ]
