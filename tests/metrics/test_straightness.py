"""Straightness against closed forms: 0 for straight constant-speed paths (and for a flow whose velocity is constant),
pi^2/4 - 2 for a quarter circle, 1/3 and 1/6 for the parabola x = t^2."""

import math

import pytest
import torch
from torch import nn

from genlab.config import build
from genlab.metrics.straightness import flow_straightness, line_deviation, straightness
from genlab.models.fast.flow_matching import FlowMatchingConfig, FlowMatchingModel
from genlab.spec import DataSpec


def test_a_straight_path_scores_zero():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, 4, generator=g, dtype=torch.float64), torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    t = torch.linspace(1, 0, 9, dtype=torch.float64)  # noise (t = 1) to data (t = 0), as a flow runs
    path = torch.stack([(1 - ti) * b + ti * a for ti in t])
    assert straightness(path, t).abs().max() < 1e-24 and line_deviation(path, t).abs().max() < 1e-12


def test_quarter_circle_and_parabola():
    t = torch.linspace(0, 1, 4001, dtype=torch.float64)
    circle = torch.stack([torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)], 1)[:, None]  # (K + 1, 1, 2)
    # int_0^1 ||(-1, 1) - (pi/2)(-sin, cos)||^2 dt = 2 - 2 (pi/2)(4/pi) + pi^2/4
    assert straightness(circle, t).item() == pytest.approx(math.pi**2 / 4 - 2, abs=1e-3)
    parabola = (t**2)[:, None, None]
    assert straightness(parabola, t).item() == pytest.approx(1 / 3, abs=1e-3)  # int (2t - 1)^2 dt
    assert line_deviation(parabola, t).item() == pytest.approx(1 / 6, abs=1e-3)  # mean of t - t^2
    with pytest.raises(ValueError, match="times"):
        straightness(parabola, t[:-1])


def test_a_flow_with_constant_velocity_is_straight_and_a_curved_one_is_not():
    cfg = build(FlowMatchingConfig, {"width": 8, "depth": 1}, "model")
    model = FlowMatchingModel(cfg, DataSpec((2,), encoding="continuous")).eval()

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = nn.Parameter(torch.zeros(()))

        def forward(self, x, c_noise, y=None):
            return torch.ones_like(x) * 0.7 + torch.sin(c_noise)[:, None] * self.curve

    model.net = Constant()
    model.net.curve = 0.0
    out = flow_straightness(model, n=64, steps=10)
    assert out["straightness"] < 1e-10 and out["line_deviation"] < 1e-6
    model.net.curve = 1.0
    assert flow_straightness(model, n=64, steps=10)["straightness"] > 0.01
