"""Conditioning embeddings for denoisers: the sinusoidal noise-level embedding of the Transformer / DDPM (Vaswani et al.
2017; Ho et al. 2020) followed by an MLP, and a class embedding with one extra "null" class for classifier-free guidance.
Random Fourier features of low-dimensional inputs (Tancik et al. 2020), for the 2D GAN critic."""

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


class FourierFeatures(nn.Module):
    """x (B, d) -> (B, 2F): [sin(2 pi x B), cos(2 pi x B)] with a fixed random B (d, F), entries ~ N(0, scale^2)
    (Tancik et al. 2020). A plain MLP learns low frequencies first and struggles to resolve detail much finer than the
    input's range (spectral bias); on these features it can. B is drawn once at init and kept in the state dict.

    >>> f = FourierFeatures(2, 8, scale=1.0)
    >>> f(torch.zeros(3, 2))[:, 8:]      # cos(0) = 1
    tensor([[1., 1., 1., 1., 1., 1., 1., 1.],
            [1., 1., 1., 1., 1., 1., 1., 1.],
            [1., 1., 1., 1., 1., 1., 1., 1.]])
    """

    def __init__(self, in_dim: int, n_features: int, scale: float = 1.0):
        super().__init__()
        self.register_buffer("B", torch.randn(in_dim, n_features) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (2 * math.pi) * (x @ self.B.to(x.dtype))
        return torch.cat([torch.sin(p), torch.cos(p)], dim=1)


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
