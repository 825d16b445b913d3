"""Inpainting with an unconditional diffusion model, RePaint-style (Lugmayr et al. 2022, "RePaint"): at every step the known
pixels are re-noised from the input, the unknown ones come from the reverse process, and the jump schedule goes back up
`jump_length` steps `resample - 1` times so the two parts harmonise."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import torch

from genlab.apps.common import add_app_parser, diffusion_model, load_examples
from genlab.errors import ConfigError
from genlab.modalities.image import save_image_grid
from genlab.noise import randn
from genlab.samplers.diffusion import ddim

MASKS = ("center", "left", "right", "top", "bottom", "random")


def repaint_schedule(steps: int, jump_length: int = 10, resample: int = 10) -> list[int]:
    """Grid indices visited, from 0 (the top noise level) to `steps` (sigma = 0): down one index at a time; on reaching a
    multiple k of jump_length (0 < k < steps, at least jump_length below the top) go back up jump_length indices,
    `resample - 1` times per k (RePaint's Algorithm 1 with its jump schedule).

    >>> repaint_schedule(4, jump_length=2, resample=2)
    [0, 1, 2, 1, 0, 1, 2, 3, 4]
    """
    if steps < 1 or jump_length < 1 or resample < 1:
        raise ConfigError("inpaint: steps, jump_length and resample must be >= 1")
    jumps = {k: resample - 1 for k in range(jump_length, steps, jump_length)}
    path, i = [0], 0
    while i < steps:
        i += 1
        path.append(i)
        if jumps.get(i, 0) > 0:
            jumps[i] -= 1
            for _ in range(jump_length):
                i -= 1
                path.append(i)
    return path


def make_mask(kind: str, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """A mask of `shape` (C, H, W), 1 where pixels are known: "center" hides the central half square, "left"/"right"/
    "top"/"bottom" a half, "random" half of the pixels."""
    C, H, W = shape
    m = torch.ones(shape)
    if kind == "center":
        m[:, H // 4 : H - H // 4, W // 4 : W - W // 4] = 0
    elif kind == "left":
        m[:, :, : W // 2] = 0
    elif kind == "right":
        m[:, :, W // 2 :] = 0
    elif kind == "top":
        m[:, : H // 2] = 0
    elif kind == "bottom":
        m[:, H // 2 :] = 0
    elif kind == "random":
        m = (torch.rand((1, H, W), generator=generator) < 0.5).float().expand(C, H, W).clone()
    else:
        raise ConfigError(f"--mask {kind!r}: expected one of {', '.join(MASKS)}")
    return m


@torch.no_grad()
def repaint(
    denoiser: Any,
    x0: torch.Tensor,
    mask: torch.Tensor,
    *,
    steps: int = 50,
    jump_length: int = 10,
    resample: int = 10,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Fill the pixels of x0 where `mask` is 0, keeping those where it is 1, on the denoiser's "discrete" grid of `steps`.

    Down a step (sigma_t -> sigma_s): known = x0 + sigma_s eps, unknown ~ q(x_s | x_t, D(x_t; sigma_t)) (the DDPM
    ancestral step), x_s = mask * known + (1 - mask) * unknown. Up a step (sigma_s -> sigma_t): x_t = x_s +
    sqrt(sigma_t^2 - sigma_s^2) eps, the forward process. Cost: len(repaint_schedule(...)) - 1 steps, about
    steps * resample function evaluations.
    """
    from tqdm.auto import tqdm

    mask = mask.to(x0.dtype).to(x0.device).expand_as(x0)
    sig = denoiser.sigmas("discrete", steps)
    path = repaint_schedule(len(sig) - 1, jump_length, resample)
    x = denoiser.prior_std(float(sig[0])) * randn(x0.shape, x0, generator)
    for a, b in tqdm(list(zip(path, path[1:])), disable=not progress, desc="repaint", leave=False):
        s_a, s_b = float(sig[a]), float(sig[b])
        if b > a:  # down: one ancestral step, then the known pixels from the forward process
            unknown = ddim(denoiser, x, sig[a : b + 1], eta=1.0, generator=generator)
            known = x0 + s_b * randn(x0.shape, x0, generator) if s_b > 0 else x0
            x = mask * known + (1 - mask) * unknown
        else:  # up: re-noise
            x = x + math.sqrt(s_b**2 - s_a**2) * randn(x.shape, x, generator)
    return x


def inpaint(
    run: str | os.PathLike | Any,
    *,
    n: int = 8,
    mask: str = "center",
    steps: int = 50,
    jump_length: int = 10,
    resample: int = 5,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Inpaint the first `n` test images of a run under `mask`; returns {"original", "masked", "inpainted", "mask"}
    (images in [-1, 1]) and writes rows original / masked (hidden pixels grey) / inpainted to `out` (.png)."""
    model = diffusion_model(run, device)
    if model.conditional or model.config.lowres:
        raise ConfigError("inpaint: use an unconditional diffusion model (e.g. configs/diffusion/ddpm_fmnist.toml)")
    if not model.spec.is_image:
        raise ConfigError("inpaint: needs an image model")
    x, _ = load_examples(model, n)
    g = torch.Generator().manual_seed(seed)
    m = make_mask(mask, model.spec.shape, g).to(x.device)
    filled = repaint(model.denoiser(), x, m, steps=steps, jump_length=jump_length, resample=resample, generator=g, progress=progress)
    filled = filled.clamp(-1, 1)
    masked = x * m
    result = {"original": x, "masked": masked, "inpainted": filled, "mask": m}
    if out is not None:
        save_image_grid(torch.cat([x, masked, filled]).cpu(), out, nrow=n, scale=2)
    return result


def _cmd(a: argparse.Namespace) -> int:
    inpaint(
        a.run,
        n=a.n,
        mask=a.mask,
        steps=a.steps,
        jump_length=a.jump_length,
        resample=a.resample,
        seed=a.seed,
        out=a.out,
        device=a.device,
        progress=True,
    )
    print(f"{a.n} test images inpainted ({a.mask} mask) -> {a.out} (rows: original, masked, inpainted)")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab inpaint RUN [--mask center] [--steps 50] [--jump-length 10] [--resample 5] [--n 8] [--out FILE.png]`."""
    p = add_app_parser(
        subparsers,
        "inpaint",
        help="fill a masked region of test images with a diffusion model (RePaint)",
        description="RePaint (Lugmayr et al. 2022): known pixels come from the forward process, unknown ones from the reverse "
        "process; the jump schedule goes back up --jump-length steps (--resample - 1) times to harmonise them.",
        epilog="examples:\n  genlab inpaint runs/ddpm_fmnist --mask center --out inpaint.png\n"
        "  genlab inpaint runs/ddpm_fmnist --mask left --steps 100 --jump-length 10 --resample 10",
        run_help="run directory of an unconditional diffusion model",
        n=8,
        n_help="test images (default 8)",
        out="inpaint.png",
        out_help="output grid (default inpaint.png)",
        steps=50,
    )
    p.add_argument("--mask", default="center", choices=MASKS, help="region to fill (default center)")
    p.add_argument("--jump-length", dest="jump_length", type=int, default=10, help="steps of each jump back up (default 10)")
    p.add_argument("--resample", type=int, default=5, help="passes through each jump (RePaint's r; 1 = no resampling; default 5)")
    p.set_defaults(fn=_cmd)
    return p
