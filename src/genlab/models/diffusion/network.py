"""The denoiser networks of the diffusion family (diffusion, flow matching, consistency models): their config keys and
how they are built and called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from genlab.config import ModelConfig, param
from genlab.errors import ConfigError
from genlab.nn.audio import DiffWaveNet
from genlab.nn.unet import MLPDenoiser, UNet
from genlab.spec import DataSpec


@dataclass
class NetworkConfig(ModelConfig):
    """The denoiser network keys of the diffusion model and the few-step models: a UNet for images, a DiffWave stack for
    waveforms, a residual MLP for vectors, class conditioning with label dropout for classifier-free guidance."""

    network: Literal["auto", "unet", "mlp", "diffwave"] = param(
        "auto", help="network: auto = unet for images (C, H, W), diffwave for waveforms (C, T), mlp for vectors"
    )
    channels: tuple[int, ...] = param((32, 64, 64), ge=1, help="unet: widths per level; each level halves the resolution (28 -> 14 -> 7)")
    blocks: int = param(1, ge=1, help="unet: residual blocks per level (down and up)")
    attn_resolutions: tuple[int, ...] = param((7,), ge=1, help="unet: resolutions (smaller side) with self-attention")
    heads: int = param(4, ge=1, help="unet: attention heads")
    dropout: float = param(0.0, ge=0, lt=1, help="unet: dropout in residual blocks")
    width: int = param(128, ge=1, help="mlp: hidden width")
    depth: int = param(3, ge=1, help="mlp: residual blocks")
    wave_channels: int = param(64, ge=1, help="diffwave: residual channels")
    wave_layers: int = param(12, ge=1, help="diffwave: residual layers")
    dilation_cycle: int = param(6, ge=1, help="diffwave: layer i has dilation 2^(i mod dilation_cycle)")
    wave_patch: int = param(1, ge=1, help="diffwave: fold this many consecutive samples into channels (divides T); the stack runs at T / p")
    conditional: bool = param(False, help="class-conditional: train with labels, sample with labels= (and guidance)")
    p_uncond: float = param(
        0.1, ge=0, lt=1, help="probability of dropping the label (conditional) or the low-res image (lowres) in training, for guidance"
    )


def build_network(cfg: NetworkConfig, spec: DataSpec, cond_channels: int = 0) -> nn.Module:
    """The UNet (images) or residual MLP (vectors) of genlab.nn.unet, or the DiffWave stack of genlab.nn.audio (waveforms),
    with K + 1 class embeddings when conditional and `cond_channels` extra input channels (a super-resolution model's
    low-res image)."""
    net = cfg.network if cfg.network != "auto" else ("unet" if spec.is_image else "diffwave" if len(spec.shape) == 2 else "mlp")
    if cfg.conditional and spec.num_classes == 0:
        raise ConfigError("model.conditional=true needs class labels, but this dataset has none; set model.conditional=false")
    K = spec.num_classes if cfg.conditional else 0
    if net == "mlp":
        return MLPDenoiser(spec.dim, width=cfg.width, depth=cfg.depth, num_classes=K)
    if net == "diffwave":
        if len(spec.shape) != 2 or spec.shape[1] % cfg.wave_patch:
            raise ConfigError(
                f"model.network='diffwave' needs waveforms (C, T) with T a multiple of model.wave_patch={cfg.wave_patch}; "
                f"the data have shape {spec.shape}"
            )
        return DiffWaveNet(
            spec.shape[0],
            channels=cfg.wave_channels,
            layers=cfg.wave_layers,
            dilation_cycle=cfg.dilation_cycle,
            patch=cfg.wave_patch,
            num_classes=K,
            cond_channels=cond_channels,
        )
    if not spec.is_image:
        raise ConfigError(f"model.network='unet' needs images, but the data are vectors of shape {spec.shape}; set model.network='mlp'")
    C = spec.shape[0]
    return UNet(
        C,
        C,
        channels=cfg.channels,
        blocks=cfg.blocks,
        attn_resolutions=cfg.attn_resolutions,
        heads=cfg.heads,
        size=spec.shape[1:],
        num_classes=K,
        cond_channels=cond_channels,
        dropout=cfg.dropout,
    )


def run_network(
    net: nn.Module, spec: DataSpec, x: torch.Tensor, c_noise: torch.Tensor, y: torch.Tensor | None, cond: torch.Tensor | None = None
) -> torch.Tensor:
    """F(x, c_noise, y[, cond]) in the network's dtype, returned in x's dtype and shape (vectors go through the MLP flat)."""
    dtype = next(net.parameters()).dtype
    if len(spec.shape) > 1 and not isinstance(net, MLPDenoiser):  # images and waveforms as they are
        return net(x.to(dtype), c_noise.to(dtype), y, None if cond is None else cond.to(dtype)).to(x.dtype)
    return net(x.flatten(1).to(dtype), c_noise.to(dtype), y).view_as(x).to(x.dtype)
