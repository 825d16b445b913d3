"""Super-resolution with a diffusion model conditioned on the low-resolution image (SR3, Saharia et al. 2022): the model
(trained with model.lowres = f) samples x given its f x f average-pooled version; scored by PSNR and SSIM (Wang et al. 2004)
against the true high-resolution test images, beside bicubic upsampling."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genlab import checkpoint as ckpt
from genlab.apps.common import add_app_parser, diffusion_model, load_examples
from genlab.errors import ConfigError
from genlab.metrics.pixels import psnr, ssim
from genlab.modalities.image import save_image_grid

RESULT_FILE = "superres.json"


def bicubic(lowres: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The baseline: bicubic upsampling of (B, C, h, w) to `size`, clamped to [-1, 1]."""
    return F.interpolate(lowres, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def superres(
    run: str | os.PathLike | Any,
    *,
    n: int = 500,
    steps: int | None = None,
    sampler: str | None = None,
    batch_size: int = 250,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
    n_show: int = 8,
) -> dict[str, Any]:
    """Upsample the first `n` test images of a run, each average-pooled by the model's factor, with the model and with bicubic
    interpolation; returns and writes (RUN/superres.json) mean PSNR and SSIM of both against the originals; `out` (.png)
    shows rows low-res (nearest), bicubic, diffusion, original for the first `n_show` images."""
    model = diffusion_model(run, device)
    f = model.config.lowres
    if not f:
        raise ConfigError(
            "superres: this model is not conditioned on low-resolution images; train one with model.lowres=2 "
            "(configs/diffusion/sr_fmnist.toml)"
        )
    x, _ = load_examples(model, n)
    g = torch.Generator().manual_seed(seed)
    size = tuple(model.spec.shape[1:])
    opts = {k: v for k, v in {"steps": steps, "sampler": sampler}.items() if v is not None}
    srs, bics = [], []
    for start in range(0, n, batch_size):
        hr = x[start : start + batch_size]
        lr = model.downsample(hr)
        srs.append(model.sample(len(hr), lowres=lr, generator=g, **opts))
        bics.append(bicubic(lr, size))
    sr, bic = torch.cat(srs), torch.cat(bics)
    result = {
        "run": str(run) if isinstance(run, (str, os.PathLike)) else None,
        "n": n,
        "factor": f,
        "from": [size[0] // f, size[1] // f],
        "to": list(size),
        "sampler": opts.get("sampler", model.config.sampler),
        "steps": opts.get("steps", model.config.steps),
        "psnr_diffusion": psnr(sr, x).mean().item(),
        "psnr_bicubic": psnr(bic, x).mean().item(),
        "ssim_diffusion": ssim(sr, x).mean().item(),
        "ssim_bicubic": ssim(bic, x).mean().item(),
    }
    if isinstance(run, (str, os.PathLike)):
        ckpt.atomic_write_text(Path(run) / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    if out is not None:
        k = min(n_show, n)
        low = F.interpolate(model.downsample(x[:k]), size=size, mode="nearest")
        save_image_grid(torch.cat([low, bic[:k], sr[:k], x[:k]]).cpu(), out, nrow=k, scale=2)
    return result


def _cmd(a: argparse.Namespace) -> int:
    r = superres(a.run, n=a.n, steps=a.steps, sampler=a.sampler, seed=a.seed, out=a.out, device=a.device)
    print(f"{r['from'][0]}x{r['from'][1]} -> {r['to'][0]}x{r['to'][1]} on {r['n']} test images ({r['sampler']}, {r['steps']} steps)")
    print(f"{'':<10}{'PSNR dB':>9}{'SSIM':>8}")
    print(f"{'bicubic':<10}{r['psnr_bicubic']:>9.2f}{r['ssim_bicubic']:>8.3f}")
    print(f"{'diffusion':<10}{r['psnr_diffusion']:>9.2f}{r['ssim_diffusion']:>8.3f}")
    print(f"-> {Path(a.run) / RESULT_FILE}" + (f", {a.out}" if a.out else ""))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab superres RUN [--n 500] [--sampler S] [--steps K] [--out FILE.png]`."""
    p = add_app_parser(
        subparsers,
        "superres",
        help="upsample low-resolution test images with a super-resolution diffusion model; PSNR/SSIM vs bicubic",
        description="SR3-style super-resolution: test images are average-pooled by the model's factor (model.lowres), "
        "upsampled by the model and by bicubic interpolation, and both are scored against the originals.",
        epilog="example:\n  genlab superres runs/sr_fmnist --n 500 --out sr.png   # rows: low-res, bicubic, diffusion, original",
        run_help="run directory of a diffusion model trained with model.lowres > 0",
        n=500,
        n_help="test images scored (default 500)",
        out=None,
        out_help="also write a picture (FILE.png)",
        steps=None,
        sampler_help="diffusion sampler (default: the model's)",
    )
    p.set_defaults(fn=_cmd)
    return p


__all__ = ["add_parser", "bicubic", "psnr", "ssim", "superres"]
