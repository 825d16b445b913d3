"""Glow (Kingma & Dhariwal 2018): multi-scale flow whose steps are ActNorm -> LU-parametrised invertible 1x1
convolution -> affine (or additive) coupling; before each split a learned prior p(z_i | h_i) = N(mu(h_i), sigma(h_i))
(written as an affine coupling of the factored-out half on the kept half)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.flow.base import FlowConfig, FlowModel, MultiScaleFlow, image_levels
from genlab.models.flow.realnvp import conv_net, elementwise
from genlab.models.flow.transforms import ActNorm, AffineMap, Compose, Coupling, Logit, LUInvertibleLinear
from genlab.registry import register_model
from genlab.spec import DataSpec


@dataclass
class GlowConfig(FlowConfig):
    """Glow for 28/32 px grayscale or RGB images."""

    name: str = param("glow", help="model name")
    levels: int = param(0, ge=0, help="multi-scale levels, each squeezes 2x2 (0 = as many as the size allows, at most 3)")
    steps: int = param(8, ge=1, help="flow steps (actnorm, 1x1 conv, coupling) per level")
    channels: int = param(128, ge=1, help="width of each coupling's conv net")
    coupling: Literal["affine", "additive"] = param("affine", help="affine or additive couplings")
    clamp: float = param(3.0, gt=0, help="affine: log-scales are soft-clamped to (-clamp, clamp)")
    learned_prior: bool = param(True, help="split prior p(z_i | h_i) learned from the kept half (else N(0, I))")
    preprocess: Literal["none", "logit"] = param("none", help="logit pre-processing of [-1, 1] (its Jacobian is in log_prob)")
    alpha: float = param(0.05, ge=0, lt=0.5, help="logit: pixels are squeezed into [alpha, 1 - alpha] before the logit")


@register_model("glow", GlowConfig)
class Glow(FlowModel):
    """Glow.

    Example:
        >>> glow = Glow(GlowConfig(steps=4, channels=64), DataSpec((1, 28, 28), 10, dequantized=True))
        >>> glow.sample(16, temperature=0.7).shape
        torch.Size([16, 1, 28, 28])
    """

    def __init__(self, config: GlowConfig, spec: DataSpec):
        super().__init__(config, spec)
        if not spec.is_image:
            raise ConfigError(f"model.name='glow' is a flow for images (C, H, W), got data of shape {spec.shape}; use realnvp, maf or nsf")
        L = image_levels(spec, config.levels)
        g = elementwise(config.coupling, config.clamp)
        net = conv_net(config.channels, self.context_dim)
        gen = torch.Generator().manual_seed(0)
        C, levels = spec.shape[0], []
        for i in range(L):
            C = 4 * C
            steps = []
            for _ in range(config.steps):
                steps += [ActNorm(C), LUInvertibleLinear(C, gen), Coupling(C, net, g)]
            if i < L - 1 and config.learned_prior:
                steps.append(Coupling(C, net, AffineMap(config.clamp), swap=True))  # z_i <- (z_i - mu(h_i)) / sigma(h_i)
            levels.append(Compose(steps))
            C = C - C // 2
        ms = MultiScaleFlow(spec.shape, levels)
        self.flow = Compose([Logit(config.alpha), ms]) if config.preprocess == "logit" else Compose([ms])
        self._setup_base()

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"steps": 2, "channels": 8, "levels": 2}, DataSpec((1, 8, 8), encoding="8bit", dequantized=True)),
            (
                {"steps": 1, "channels": 8, "levels": 2, "conditional": True, "coupling": "additive", "preprocess": "logit"},
                DataSpec((3, 8, 8), num_classes=3, encoding="8bit", dequantized=True),
            ),
            ({"steps": 1, "channels": 8, "levels": 1}, DataSpec((1, 4, 4), encoding="8bit")),
        ]
