"""RealNVP (Dinh et al. 2017, "Density estimation using Real NVP"): affine coupling layers, or NICE's additive
ones (Dinh et al. 2015). Vectors: a stack of MLP couplings alternating halves. Images: the multi-scale
architecture: per level checkerboard couplings, squeeze, channel-wise couplings, factor out half the channels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from genlab.config import param
from genlab.errors import ConfigError
from genlab.models.flow.base import FlowConfig, FlowModel, MultiScaleFlow, image_levels
from genlab.models.flow.transforms import (
    ActNorm,
    AdditiveMap,
    AffineMap,
    BatchNormFlow,
    CheckerboardCoupling,
    Compose,
    ConvConditioner,
    Coupling,
    Logit,
    MLPConditioner,
    Transform,
)
from genlab.registry import register_model
from genlab.spec import DataSpec

Norm = Literal["none", "actnorm", "batchnorm"]


@dataclass
class RealNVPConfig(FlowConfig):
    """RealNVP for vectors (MLP couplings) and images (multi-scale, conv couplings)."""

    name: str = param("realnvp", help="model name")
    coupling: Literal["affine", "additive"] = param("affine", help="affine (RealNVP) or additive, volume-preserving (NICE) couplings")
    layers: int = param(8, ge=1, help="vectors: coupling layers (alternating halves)")
    hidden: tuple[int, ...] = param((128, 128), ge=1, help="vectors: hidden widths of each coupling MLP")
    levels: int = param(0, ge=0, help="images: multi-scale levels, each squeezes 2x2 (0 = as many as the size allows, at most 3)")
    steps: int = param(2, ge=1, help="images: checkerboard couplings and channel couplings per level (each)")
    channels: int = param(64, ge=1, help="images: width of each coupling's conv net")
    norm: Norm = param("actnorm", help="normalisation layer after each coupling: actnorm (data-initialised), batchnorm or none")
    clamp: float = param(3.0, gt=0, help="affine: log-scales are soft-clamped to (-clamp, clamp)")
    preprocess: Literal["logit", "none"] = param("logit", help="images: logit pre-processing of [-1, 1] (its Jacobian is in log_prob)")
    alpha: float = param(0.05, ge=0, lt=0.5, help="logit: pixels are squeezed into [alpha, 1 - alpha] before the logit")


def norm_layer(kind: Norm, channels: int) -> list[Transform]:
    return {"none": [], "actnorm": [ActNorm(channels)], "batchnorm": [BatchNormFlow(channels)]}[kind]


def elementwise(coupling: str, clamp: float) -> AffineMap | AdditiveMap:
    return AffineMap(clamp) if coupling == "affine" else AdditiveMap()


def mlp_net(hidden: tuple[int, ...], context_dim: int):
    return lambda i, o: MLPConditioner(i, o, hidden, context_dim)


def conv_net(width: int, context_dim: int):
    return lambda i, o: ConvConditioner(i, o, width, context_dim)


def check_vector_dim(spec: DataSpec, who: str) -> None:
    if spec.is_image or len(spec.shape) != 1:
        raise ConfigError(f"model.name={who!r} is a flow for vectors (2D / tabular data), got data of shape {spec.shape}")


@register_model("realnvp", RealNVPConfig)
class RealNVP(FlowModel):
    """RealNVP: z = f(x) through affine coupling layers; exact log p(x) and one-pass sampling.

    Example:
        >>> flow = RealNVP(RealNVPConfig(layers=6), DataSpec((2,), encoding="continuous"))
        >>> flow.log_prob(torch.randn(5, 2)).shape        # nats per example
        torch.Size([5])
        >>> flow.sample(100, temperature=0.8).shape
        torch.Size([100, 2])
    """

    def __init__(self, config: RealNVPConfig, spec: DataSpec):
        super().__init__(config, spec)
        g = elementwise(config.coupling, config.clamp)
        ctx = self.context_dim
        if spec.is_image:
            C = spec.shape[0]
            L = image_levels(spec, config.levels)
            pre, levels = [], []
            net = conv_net(config.channels, ctx)
            for _ in range(L):
                steps = [(CheckerboardCoupling(C, net, g, parity=s % 2), *norm_layer(config.norm, C)) for s in range(config.steps)]
                pre.append(Compose([t for step in steps for t in step]))
                C = 4 * C
                steps = [(Coupling(C, net, g, swap=s % 2 == 1), *norm_layer(config.norm, C)) for s in range(config.steps)]
                levels.append(Compose([t for step in steps for t in step]))
                C = C - C // 2
            ms = MultiScaleFlow(spec.shape, levels, pre)
            self.flow = Compose([Logit(config.alpha), ms]) if config.preprocess == "logit" else Compose([ms])
        else:
            check_vector_dim(spec, "realnvp")
            D = spec.dim
            if D < 2:
                raise ConfigError(
                    f"model.name='realnvp': a coupling layer splits the features in two, which needs at least 2, got {D}; use maf or nsf"
                )
            net = mlp_net(config.hidden, ctx)
            steps = [(Coupling(D, net, g, swap=i % 2 == 1), *norm_layer(config.norm, D)) for i in range(config.layers)]
            self.flow = Compose([t for step in steps for t in step])
        self._setup_base()

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        return [
            ({"layers": 3, "hidden": [16]}, DataSpec((2,), encoding="continuous")),
            ({"layers": 2, "hidden": [16], "coupling": "additive", "norm": "none", "conditional": True}, DataSpec((3,), 3, "continuous")),
            ({"steps": 1, "channels": 8, "levels": 2}, DataSpec((1, 8, 8), encoding="8bit", dequantized=True)),
            (
                {"steps": 1, "channels": 8, "levels": 1, "conditional": True, "dequantization": "variational", "norm": "none"},
                DataSpec((3, 4, 4), num_classes=3, encoding="8bit"),
            ),
        ]
