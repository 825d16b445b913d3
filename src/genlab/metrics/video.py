"""Video-prediction metrics per frame as in OpenSTL's table (Tan et al. 2023, "OpenSTL: A Comprehensive Benchmark of
Spatio-Temporal Predictive Learning"): MSE and MAE summed over a frame's pixels in [0, 1], SSIM, PSNR."""

from __future__ import annotations

import math

import torch

from genlab.metrics.pixels import psnr, ssim

PSNR_CAP = 100.0  # dB: identical frames have PSNR = inf; averages count them at this value


def _check(pred: torch.Tensor, true: torch.Tensor) -> None:
    if pred.shape != true.shape or pred.ndim != 5:
        raise ValueError(f"expected predicted and true clips of one shape (N, T, C, H, W); got {tuple(pred.shape)} and {tuple(true.shape)}")


def frame_errors(pred: torch.Tensor, true: torch.Tensor, batch_size: int = 2000) -> dict[str, torch.Tensor]:
    """Per-frame scores (N, T), float64, of clips (N, T, C, H, W) in [-1, 1], with u = (x + 1) / 2 in [0, 1]:
        mse  = sum_pixels (u_pred - u_true)^2      (OpenSTL's "MSE": per frame, summed over C x H x W)
        mae  = sum_pixels |u_pred - u_true|
        psnr = 10 log10(1 / mean_pixels (u_pred - u_true)^2) dB, +inf for identical frames
        ssim = Wang et al. 2004, Gaussian 7 x 7 window (sigma 1.5), in [0, 1] units.

    >>> x = torch.zeros(1, 2, 1, 8, 8)
    >>> frame_errors(x, x)["psnr"].tolist()
    [[inf, inf]]
    """
    _check(pred, true)
    N, T = pred.shape[:2]
    a, b = pred.flatten(0, 1), true.flatten(0, 1)
    out: dict[str, list[torch.Tensor]] = {"mse": [], "mae": [], "psnr": [], "ssim": []}
    for s in range(0, len(a), batch_size):
        pa, pb = a[s : s + batch_size].double(), b[s : s + batch_size].double()
        d = (pa - pb) / 2  # the difference in [0, 1] units
        sq = d.pow(2).flatten(1)
        out["mse"].append(sq.sum(1))
        out["mae"].append(d.abs().flatten(1).sum(1))
        out["psnr"].append(torch.where(sq.mean(1) == 0, math.inf, psnr(pa, pb)))
        out["ssim"].append(ssim(pa, pb))
    return {k: torch.cat(v).reshape(N, T) for k, v in out.items()}


def prediction_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float | list[float]]:
    """Means over clips and frames of `frame_errors` ("mse", "mae", "ssim", "psnr", PSNR capped at PSNR_CAP dB), and
    the per-frame curves averaged over clips ("mse_per_frame", ..., one value per predicted frame)."""
    e = frame_errors(pred, true)
    e["psnr"] = e["psnr"].clamp(max=PSNR_CAP)
    out: dict[str, float | list[float]] = {k: float(v.mean()) for k, v in e.items()}
    out.update({f"{k}_per_frame": v.mean(0).tolist() for k, v in e.items()})
    return out
