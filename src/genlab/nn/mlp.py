"""Multi-layer perceptrons: Linear -> [LayerNorm] -> activation stacks of any widths, shared by every family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

Activation = Literal["silu", "relu", "gelu", "leaky_relu"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}


def make_activation(name: Activation) -> nn.Module:
    """A fresh activation module by name: "silu", "relu", "gelu" or "leaky_relu" (slope 0.01)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """in_dim -> hidden[0] -> ... -> hidden[-1] -> out_dim; every hidden layer is Linear, [LayerNorm], activation.

    `hidden=()` is a single affine map (no non-linearity), so a linear-Gaussian model is an MLP too.

    Example:
        >>> net = MLP(784, 64, hidden=(512, 256), activation="silu", layer_norm=True)
        >>> net(torch.zeros(8, 784)).shape
        torch.Size([8, 64])
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int] = (), activation: Activation = "silu", layer_norm: bool = False):
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers.append(nn.Linear(width, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(make_activation(activation))
            width = h
        layers.append(nn.Linear(width, out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
