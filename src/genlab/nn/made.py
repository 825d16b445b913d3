"""MADE: masked autoencoder for distribution estimation (Germain et al. 2015), with a context input that
feeds every hidden unit (Papamakarios et al. 2017), as used by MAF and autoregressive neural spline flows."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genlab.nn.mlp import Activation, make_activation


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """x (B, D)[, context (B, C)] -> (B, D, params_per_dim): output d depends only on inputs x_i with order(i) < order(d).

    Degrees follow Germain et al.: input i has degree order[i] in 1..D, hidden units cycle through 1..D-1, an
    output of input d sees hidden units of degree < order[d]. The context is unmasked (every hidden unit sees it).

    Example:
        >>> made = MADE(3, 2, hidden=(32, 32))
        >>> made(torch.randn(5, 3)).shape
        torch.Size([5, 3, 2])
    """

    def __init__(
        self,
        dim: int,
        params_per_dim: int,
        hidden: Sequence[int] = (64, 64),
        context_dim: int = 0,
        order: torch.Tensor | None = None,
        activation: Activation = "relu",
    ):
        super().__init__()
        if not hidden:
            raise ValueError("MADE needs at least one hidden layer")
        self.dim, self.params_per_dim, self.context_dim = dim, params_per_dim, context_dim
        order = torch.arange(1, dim + 1) if order is None else order.long()
        if sorted(order.tolist()) != list(range(1, dim + 1)):
            raise ValueError(f"order must be a permutation of 1..{dim}, got {order.tolist()}")
        self.register_buffer("order", order)
        degrees = [order]
        for h in hidden:
            degrees.append(torch.arange(h) % max(1, dim - 1) + 1)
        layers: list[nn.Module] = []
        for i, h in enumerate(hidden):
            mask = (degrees[i + 1][:, None] >= degrees[i][None, :]).float()  # (h, in)
            layers.append(MaskedLinear(degrees[i].numel(), h, mask))
        self.hidden = nn.ModuleList(layers)
        self.context = nn.Linear(context_dim, hidden[0]) if context_dim else None
        out_deg = order.repeat(params_per_dim)  # output k * D + d has degree order[d]
        self.out = MaskedLinear(hidden[-1], dim * params_per_dim, (out_deg[:, None] > degrees[-1][None, :]).float())
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hidden[0](x)
        if self.context is not None:
            if context is None:
                raise ValueError("this MADE takes a context vector")
            h = h + self.context(context)
        h = self.act(h)
        for layer in self.hidden[1:]:
            h = self.act(layer(h))
        return self.out(h).view(x.shape[0], self.params_per_dim, self.dim).transpose(1, 2)  # (B, D, P)
