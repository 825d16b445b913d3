"""Monotonic rational-quadratic splines (Gregory & Delbourgo 1982) as used by neural spline flows
(Durkan et al. 2019): K bins on [-B, B], identity (linear) tails outside, vectorised with searchsorted."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3  # interior knot derivatives lie in (MIN_DERIVATIVE, 1 / MIN_DERIVATIVE)


def spline_params(raw: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unconstrained (..., 3K - 1) -> knots x_k (..., K+1), y_k (..., K+1) on [-B, B] and derivatives d_k (..., K+1).

    Widths and heights are softmaxes (each bin at least MIN_BIN of the interval). Interior derivatives live in log
    space: log d_k = L softsign(u_k / L), L = -log MIN_DERIVATIVE, i.e. d_k = exp(u_k) near u_k = 0, softly bounded to
    (MIN_DERIVATIVE, 1 / MIN_DERIVATIVE). The log-determinant is a sum of log-slopes, so its gradient with respect to
    u_k stays O(1) for steep and flat bins alike (with d = softplus(u), d log d / du ~ 1/u: steep bins, which sharp
    modes and edges need, learn slowly). u = 0 gives d = 1, so equal widths and heights start the spline at the
    identity; the two boundary derivatives are 1, so the spline joins the identity tails smoothly.
    """
    K = (raw.shape[-1] + 1) // 3
    w, h, d = raw[..., :K], raw[..., K : 2 * K], raw[..., 2 * K :]

    def knots(u: torch.Tensor) -> torch.Tensor:
        u = MIN_BIN + (1 - MIN_BIN * K) * torch.softmax(u, dim=-1)
        c = F.pad(torch.cumsum(u, dim=-1), (1, 0))
        c = 2 * bound * c - bound
        return torch.cat([c[..., :-1], torch.full_like(c[..., -1:], bound)], dim=-1)  # last knot exactly at B

    ones = torch.ones_like(d[..., :1])
    log_limit = -math.log(MIN_DERIVATIVE)
    deriv = torch.cat([ones, torch.exp(log_limit * F.softsign(d / log_limit)), ones], dim=-1)
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
