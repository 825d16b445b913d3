"""Interpolation between two images with a diffusion model: deterministic DDIM inversion of each image to its noise
x_T (Song et al. 2021, sec. 4.3; the probability-flow ODE run forwards), spherical interpolation of the two noises, and
DDIM decoding of every point on the path."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from genlab.apps.common import add_app_parser, diffusion_model, load_examples
from genlab.errors import ConfigError
from genlab.modalities.image import save_image_grid
from genlab.nn.functional import slerp
from genlab.samplers.diffusion import ddim


@torch.no_grad()
def ddim_invert(denoiser: Any, x0: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """x0 -> x at the top noise level by Euler steps of dx/dsigma = (x - D(x; sigma)) / sigma up the denoiser's "uniform"
    grid (DDIM with eta = 0 run backwards), starting from x0 at the lowest level. Returns x at sigmas[0] (not rescaled)."""
    sig = denoiser.sigmas("uniform", steps)[:-1].flip(0)  # ascending, without 0
    x = x0
    for i in range(len(sig) - 1):
        s, s_next = float(sig[i]), float(sig[i + 1])
        x = x + (s_next - s) * (x - denoiser(x, s)) / s
    return x


@torch.no_grad()
def ddim_decode(denoiser: Any, x_top: torch.Tensor, steps: int = 50) -> torch.Tensor:
    """The inverse of `ddim_invert`: DDIM (eta = 0) down the same grid from the top level to sigma = 0."""
    return ddim(denoiser, x_top, denoiser.sigmas("uniform", steps))


@torch.no_grad()
def interpolate_pair(denoiser: Any, x_a: torch.Tensor, x_b: torch.Tensor, frames: int = 8, steps: int = 50) -> torch.Tensor:
    """(B, *shape) pairs -> (B, frames, *shape): DDIM-invert both ends, slerp the noises (scaled to unit variance by the
    prior's std, where slerp keeps Gaussian norms), decode each frame. The end frames are the reconstructions."""
    top = float(denoiser.sigmas("uniform", steps)[0])
    scale = denoiser.prior_std(top)
    z_a, z_b = ddim_invert(denoiser, x_a, steps) / scale, ddim_invert(denoiser, x_b, steps) / scale
    t = torch.linspace(0, 1, frames, dtype=x_a.dtype, device=x_a.device)
    z = slerp(z_a.flatten(1), z_b.flatten(1), t)  # (B, T, D)
    x = ddim_decode(denoiser, scale * z.flatten(0, 1).view(-1, *x_a.shape[1:]), steps)
    return x.view(x_a.shape[0], frames, *x_a.shape[1:])


def interpolate(
    run: str | os.PathLike | Any,
    *,
    pairs: int = 4,
    frames: int = 8,
    steps: int = 50,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
) -> torch.Tensor:
    """Interpolate between test images 2i and 2i + 1 for i < `pairs`; returns (pairs, frames + 2, *shape): the two
    originals around the decoded path, written as one row per pair to `out` (.png)."""
    model = diffusion_model(run, device)
    if model.config.lowres:
        raise ConfigError("interpolate: use a diffusion model without low-resolution conditioning")
    x, y = load_examples(model, 2 * pairs)
    x_a, x_b = x[0::2], x[1::2]
    den = model.denoiser(y[0::2] if model.conditional else None, 1.0)
    path = interpolate_pair(den, x_a, x_b, frames, steps).clamp(-1, 1)
    grid = torch.cat([x_a[:, None], path, x_b[:, None]], dim=1)
    if out is not None:
        save_image_grid(grid.flatten(0, 1).cpu(), out, nrow=frames + 2, scale=2)
    return grid


def _cmd(a: argparse.Namespace) -> int:
    interpolate(a.run, pairs=a.pairs, frames=a.frames, steps=a.steps, out=a.out, device=a.device)
    print(f"{a.pairs} interpolations of {a.frames} frames -> {a.out} (each row: image A, path, image B)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab interpolate RUN [--pairs 4] [--frames 8] [--steps 50] [--out FILE.png]`."""
    p = add_app_parser(
        subparsers,
        "interpolate",
        help="interpolate between test images through their DDIM-inverted noise (slerp)",
        description="Each image is mapped to its noise by deterministic DDIM inversion; the two noises are interpolated "
        "spherically and every frame is decoded with DDIM on the same grid.",
        epilog="example:\n  genlab interpolate runs/ddpm_fmnist --pairs 4 --frames 8 --out interp.png",
        run_help="run directory of a diffusion model",
        n=None,
        n_help="",
        out="interpolate.png",
        out_help="output grid (default interpolate.png)",
        steps=50,
    )
    p.add_argument("--pairs", type=int, default=4, help="pairs of test images (default 4)")
    p.add_argument("--frames", type=int, default=8, help="frames per path, ends included (default 8)")
    p.set_defaults(fn=_cmd)
    return p
