"""Monotonic rational-quadratic splines (Gregory & Delbourgo 1982) as used by neural spline flows
(Durkan et al. 2019): K bins on [-B, B], identity (linear) tails outside, vectorised with searchsorted."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3


def spline_params(raw: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unconstrained (..., 3K - 1) -> knots x_k (..., K+1), y_k (..., K+1) on [-B, B] and derivatives d_k (..., K+1).

    Widths and heights are softmaxes (each bin at least MIN_BIN of the interval); interior derivatives are
    softplus + MIN_DERIVATIVE; the two boundary derivatives are 1 so the spline joins the identity tails smoothly.
    """
    K = (raw.shape[-1] + 1) // 3
    w, h, d = raw[..., :K], raw[..., K : 2 * K], raw[..., 2 * K :]

    def knots(u: torch.Tensor) -> torch.Tensor:
        u = MIN_BIN + (1 - MIN_BIN * K) * torch.softmax(u, dim=-1)
        c = F.pad(torch.cumsum(u, dim=-1), (1, 0))
        c = 2 * bound * c - bound
        return torch.cat([c[..., :-1], torch.full_like(c[..., -1:], bound)], dim=-1)  # last knot exactly at B

    ones = torch.ones_like(d[..., :1])
    deriv = torch.cat([ones, MIN_DERIVATIVE + F.softplus(d + 0.5413248546129181), ones], dim=-1)  # softplus(0.54) = 1
    return knots(w), knots(h), deriv


def rq_spline(x: torch.Tensor, raw: torch.Tensor, bound: float, inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the spline with parameters `raw` (x.shape + (3K - 1,)) elementwise: returns (y, log|dy/dx|) per element.

    With `inverse`, solves the quadratic for x given y and returns (x, log|dx/dy|). Outside [-B, B] the map is the
    identity with log-derivative 0.
    """
    xk, yk, dk = spline_params(raw, bound)
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)
    knots = yk if inverse else xk
    idx = torch.searchsorted(knots.detach().contiguous(), xc.detach()[..., None].contiguous(), right=True) - 1
    idx = idx.clamp(0, knots.shape[-1] - 2)

    def at(t: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, i)[..., 0]

    x0, x1 = at(xk, idx), at(xk, idx + 1)
    y0, y1 = at(yk, idx), at(yk, idx + 1)
    d0, d1 = at(dk, idx), at(dk, idx + 1)
    w, h = x1 - x0, y1 - y0
    s = h / w
    if inverse:
        dy = xc - y0
        a = h * (s - d0) + dy * (d1 + d0 - 2 * s)
        b = h * d0 - dy * (d1 + d0 - 2 * s)
        c = -s * dy
        disc = (b.pow(2) - 4 * a * c).clamp(min=0)
        xi = (2 * c) / (-b - disc.sqrt())
        out = xi * w + x0
    else:
        xi = (xc - x0) / w
        out = y0 + h * (s * xi.pow(2) + d0 * xi * (1 - xi)) / (s + (d1 + d0 - 2 * s) * xi * (1 - xi))
    t = xi * (1 - xi)
    den = s + (d1 + d0 - 2 * s) * t
    log_deriv = 2 * torch.log(s) + torch.log(d1 * xi.pow(2) + 2 * s * t + d0 * (1 - xi).pow(2)) - 2 * torch.log(den)
    if inverse:
        log_deriv = -log_deriv
    return torch.where(inside, out, x), torch.where(inside, log_deriv, torch.zeros_like(log_deriv))
