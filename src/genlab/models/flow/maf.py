"""Masked autoregressive flow (Papamakarios et al. 2017): z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)) with mu, alpha
from a MADE (Germain et al. 2015); consecutive layers reverse the order; optional batch-norm layers between."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genlab.config import param
from genlab.models.flow.base import FlowConfig, FlowModel
from genlab.models.flow.realnvp import check_vector_dim
from genlab.models.flow.transforms import AffineMap, Autoregressive, BatchNormFlow, Compose
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class MAFConfig(FlowConfig):
    """MAF for vectors: density evaluation in one pass, sampling in D passes."""

    name: str = param("maf", help="model name")
    layers: int = param(5, ge=1, help="autoregressive layers (the order reverses from one to the next)")
    hidden: tuple[int, ...] = param((128, 128), ge=1, help="hidden widths of each MADE (at least one layer)")
    batchnorm: bool = param(False, help="a batch-norm flow layer after each autoregressive layer (as in the MAF paper)")
    clamp: float = param(3.0, gt=0, help="log-scales are soft-clamped to (-clamp, clamp)")

    def validate(self) -> None:
        from genlab.errors import ConfigError

        if not self.hidden:
            raise ConfigError("model.hidden: a MADE needs at least one hidden layer, e.g. [128, 128]")


@register_model("maf", MAFConfig)
class MAF(FlowModel):
    """Masked autoregressive flow.

    Example:
        >>> flow = MAF(MAFConfig(layers=5), DataSpec((2,), encoding="continuous"))
        >>> flow.loss({"x": torch.randn(256, 2)})["loss"].backward()
    """

    def __init__(self, config: MAFConfig, spec: DataSpec):
        super().__init__(config, spec)
        check_vector_dim(spec, "maf")
        D = spec.dim
        layers = []
        for i in range(config.layers):
            order = torch.arange(1, D + 1) if i % 2 == 0 else torch.arange(D, 0, -1)
            layers.append(Autoregressive(D, AffineMap(config.clamp), config.hidden, self.context_dim, order))
            if config.batchnorm:
                layers.append(BatchNormFlow(D))
        self.flow = Compose(layers)
        self._setup_base()

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"layers": 2, "hidden": [16]}, DataSpec((2,), encoding="continuous")),
            ({"layers": 2, "hidden": [16], "conditional": True}, DataSpec((4,), 3, "continuous")),
        ]
