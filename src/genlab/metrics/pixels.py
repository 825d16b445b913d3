"""Full-reference image quality: PSNR and SSIM (Wang et al. 2004, "Image Quality Assessment: From Error Visibility to
Structural Similarity") of images in [-1, 1]; used by super-resolution and video prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (dB) of images in [-1, 1] (peak-to-peak 2): 10 log10(4 / MSE).

    >>> psnr(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.2)).round().item()
    20.0
    """
    mse = (x - ref).double().pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp(min=1e-20))


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).to(like.dtype).to(like.device)


def ssim(x: torch.Tensor, ref: torch.Tensor, *, window: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004) of images in [-1, 1], mapped to [0, 1]: Gaussian-weighted local
    means, variances and covariance over `window` x `window` patches (7 suits 28 px images; 11 is the paper's for large
    ones), C1 = 0.01^2, C2 = 0.03^2, averaged over the valid positions and channels.

    >>> ssim(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)).item()
    1.0
    """
    a, b = (x.double() + 1) / 2, (ref.double() + 1) / 2
    C = a.shape[1]
    w = _gaussian_window(window, sigma, C, a)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=C)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)
