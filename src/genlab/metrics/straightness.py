"""How straight a flow's trajectories are: Liu et al. 2023's straightness S = int_0^1 ||(x_1 - x_0) - dx_t/dt||^2 dt (0 exactly
for straight paths at constant speed, which one Euler step integrates exactly) and the mean distance of a trajectory from the
chord between its ends."""

from __future__ import annotations

from typing import Any

import torch


def _check(path: torch.Tensor, times: torch.Tensor) -> None:
    if path.dim() < 2 or times.dim() != 1 or len(times) != len(path) or len(times) < 2:
        raise ValueError(f"expected a path (K + 1, B, ...) and its K + 1 times; got shapes {tuple(path.shape)} and {tuple(times.shape)}")


def straightness(path: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """S per trajectory (B,) from points path[k] (K + 1, B, *shape) at times[k]: with the chord's velocity
    u = (x_K - x_0) / (t_K - t_0) and each segment's v_k = (x_{k+1} - x_k) / (t_{k+1} - t_k),
        S = sum_k |t_{k+1} - t_k| ||v_k - u||^2 / |t_K - t_0|   (a Riemann sum of Liu et al.'s integral, in any time direction).

    >>> t = torch.linspace(0, 1, 5); straightness(torch.stack([ti * torch.ones(1, 2) for ti in t]), t)
    tensor([0.])
    """
    _check(path, times)
    dt = (times[1:] - times[:-1]).to(path.dtype).view(-1, *([1] * (path.dim() - 1)))
    total = (times[-1] - times[0]).to(path.dtype)
    u = (path[-1] - path[0]) / total
    v = (path[1:] - path[:-1]) / dt
    sq = (v - u).pow(2).flatten(2).sum(2)  # (K, B)
    return (dt.abs().flatten(1) * sq).sum(0) / total.abs()


def line_deviation(path: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Mean over the points of each trajectory (B,) of ||x_k - ((1 - s_k) x_0 + s_k x_K)||, s_k = (t_k - t_0) / (t_K - t_0):
    the distance from the straight line between its ends at the same fraction of the time."""
    _check(path, times)
    s = ((times - times[0]) / (times[-1] - times[0])).to(path.dtype).view(-1, *([1] * (path.dim() - 1)))
    chord = (1 - s) * path[0] + s * path[-1]
    return (path - chord).flatten(2).norm(dim=2).mean(0)


@torch.no_grad()
def flow_straightness(model: Any, n: int = 500, steps: int = 50, *, seed: int = 0, batch_size: int = 500) -> dict[str, float]:
    """Mean straightness and line deviation of a flow model's Euler trajectories (`model.trajectory(noise, steps, labels=)`)
    from `n` seeded noises; balanced labels for a class-conditional model."""
    from genlab.models.distributions import randn

    g = torch.Generator().manual_seed(seed)
    like = next(model.parameters())
    s_sum, d_sum = 0.0, 0.0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        noise = randn((m, *model.spec.shape), like, g)
        labels = (torch.arange(start, start + m) % model.spec.num_classes).to(like.device) if model.conditional else None
        path, times = model.trajectory(noise, steps, labels=labels)
        s_sum += float(straightness(path, times).sum())
        d_sum += float(line_deviation(path, times).sum())
    return {"straightness": s_sum / n, "line_deviation": d_sum / n, "n": n, "steps": steps}


__all__ = ["flow_straightness", "line_deviation", "straightness"]
