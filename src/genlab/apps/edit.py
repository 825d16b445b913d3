"""SDEdit-style editing and class transfer with a diffusion model (Meng et al. 2022, "SDEdit"): noise an input to a chosen
strength t0 in (0, 1], x = x0 + sigma(t0) eps, and denoise it back, optionally towards another class with guidance."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from genlab import registry
from genlab.apps.common import add_app_parser, diffusion_model, load_examples
from genlab.errors import ConfigError
from genlab.modalities.image import save_image_grid
from genlab.noise import randn


@torch.no_grad()
def sdedit(
    denoiser: Any,
    x0: torch.Tensor,
    strength: float,
    *,
    steps: int = 50,
    sampler: str = "ddpm",
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """Noise x0 to the level a fraction `strength` of the way up the denoiser's "uniform" grid (for a VP model the timestep
    t0 = strength * T) and denoise it with `sampler` in `steps` steps of that grid. strength -> 0 returns x0; 1 ignores it.

    >>> edited = sdedit(model.denoiser(labels=target, guidance=2.0), x, 0.6)  # doctest: +SKIP
    """
    if not 0 < strength <= 1:
        raise ConfigError(f"strength: expected a value in (0, 1], got {strength}")
    full = denoiser.sigmas("uniform", max(steps, round(steps / strength)))  # descending, ends at 0
    sigmas = full[-(steps + 1) :]
    x = x0 + float(sigmas[0]) * randn(x0.shape, x0, generator)
    return registry.sampler(sampler)(denoiser, x, sigmas, generator=generator, **options)


def edit(
    run: str | os.PathLike | Any,
    *,
    n: int = 8,
    strengths: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8),
    to_class: int | None = None,
    guidance: float | None = None,
    steps: int = 50,
    sampler: str = "ddpm",
    seed: int = 0,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
) -> torch.Tensor:
    """Edit the first `n` test images of a run at each strength (towards class `to_class` for a conditional model);
    returns (n, 1 + len(strengths), *shape): the input, then one edit per strength; writes a grid to `out` (.png)."""
    model = diffusion_model(run, device)
    x, y = load_examples(model, n)
    if to_class is not None:
        if not model.conditional:
            raise ConfigError("--to-class needs a class-conditional diffusion model (model.conditional=true)")
        if not 0 <= to_class < model.spec.num_classes:
            raise ConfigError(f"--to-class: expected a class in 0..{model.spec.num_classes - 1}")
        y = torch.full((n,), to_class, dtype=torch.long, device=model.device)
    den = model.denoiser(y if model.conditional else None, guidance)
    rows = [x]
    for s in strengths:
        rows.append(sdedit(den, x, s, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1))
    grid = torch.stack(rows, dim=1)  # (n, 1 + S, C, H, W)
    if out is not None:
        save_image_grid(grid.flatten(0, 1).cpu(), out, nrow=grid.shape[1], scale=2)
    return grid


def _cmd(a: argparse.Namespace) -> int:
    strengths = tuple(float(s) for s in a.strength.split(","))
    edit(
        a.run,
        n=a.n,
        strengths=strengths,
        to_class=a.to_class,
        guidance=a.guidance,
        steps=a.steps,
        sampler=a.sampler,
        seed=a.seed,
        out=a.out,
        device=a.device,
    )
    print(f"{a.n} test images edited at strengths {', '.join(map(str, strengths))} -> {a.out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab edit RUN [--strength 0.2,0.4,...] [--to-class K] [--guidance W] [--n N] [--out FILE.png]`."""
    p = add_app_parser(
        subparsers,
        "edit",
        help="SDEdit: noise test images to a strength and denoise them (optionally into another class)",
        description="SDEdit (Meng et al. 2022): each input is noised to x0 + sigma(t0) eps with t0 = strength * T and denoised; "
        "a class-conditional model can denoise towards --to-class. Rows: input, then one edit per strength.",
        epilog="examples:\n  genlab edit runs/ddpm_fmnist --strength 0.3,0.5,0.7 --out edit.png\n"
        "  genlab edit runs/cddpm_fmnist --to-class 7 --guidance 3 --out to_sneakers.png",
        run_help="run directory of a diffusion model",
        n=8,
        n_help="test images to edit (default 8)",
        out="edit.png",
        out_help="output grid (default edit.png)",
        steps=50,
        sampler="ddpm",
        sampler_help="diffusion sampler (default ddpm)",
    )
    p.add_argument("--strength", default="0.2,0.4,0.6,0.8", help="comma-separated noise strengths in (0, 1] (default 0.2,0.4,0.6,0.8)")
    p.add_argument("--to-class", dest="to_class", type=int, default=None, help="class-conditional model: denoise towards this class")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the model's)")
    p.set_defaults(fn=_cmd)
    return p


__all__ = ["add_parser", "edit", "sdedit"]
