"""Conditioning embeddings for denoisers: the sinusoidal noise-level embedding of the Transformer / DDPM (Vaswani et al.
2017; Ho et al. 2020) followed by an MLP, and a class embedding with one extra "null" class for classifier-free guidance."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) float noise levels -> (B, dim): [cos(t w_i), sin(t w_i)] with w_i = max_period^(-i / (dim/2)), i < dim/2.

    >>> sinusoidal_embedding(torch.zeros(2), 4)
    tensor([[1., 1., 0., 0.],
            [1., 1., 0., 0.]])
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb.to(t.dtype) if t.is_floating_point() else emb


class NoiseEmbedding(nn.Module):
    """c_noise (B,) -> (B, emb_dim): sinusoidal features of width `freq_dim`, then Linear-SiLU-Linear."""

    def __init__(self, freq_dim: int, emb_dim: int):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(c_noise, self.freq_dim))


class ClassEmbedding(nn.Embedding):
    """Labels 0..K-1 -> (B, emb_dim); label K (`null`) is the "no label" token that classifier-free guidance drops to."""

    def __init__(self, num_classes: int, emb_dim: int):
        super().__init__(num_classes + 1, emb_dim)
        self.null = num_classes
        nn.init.normal_(self.weight, std=0.02)
