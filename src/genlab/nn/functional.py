"""Small tensor functions shared by several families."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for Gaussian latents): (B, D), (B, D), (T,) -> (B, T, D).

    z(t) = sin((1 - t) omega) / sin omega * z0 + sin(t omega) / sin omega * z1, omega the angle between z0 and z1;
    linear where the two are (nearly) parallel.
    """
    cos = F.cosine_similarity(z0, z1, dim=-1).clamp(-1, 1)[:, None, None]  # (B, 1, 1)
    omega = torch.arccos(cos)
    t = t[None, :, None]  # (1, T, 1)
    sin = torch.sin(omega)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w0 = torch.where(parallel, 1 - t, torch.sin((1 - t) * omega) / safe)
    w1 = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return w0 * z0[:, None] + w1 * z1[:, None]
