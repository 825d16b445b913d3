"""The ConvLSTM video predictor: the cell's equations by hand, the roll-out (a longer horizon extends a shorter one;
the given frames all reach the prediction), clear config errors, and that it learns constant motion better than
copying the last frame."""

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab.config import build
from genlab.errors import ConfigError
from genlab.models import build_model
from genlab.models.video.convlstm import ConvLSTMConfig
from genlab.nn.video import ConvLSTMCell, ConvLSTMNet
from genlab.spec import DataSpec


def test_cell_follows_the_convlstm_equations():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3, kernel=3)
    x, h, c = torch.randn(2, 2, 5, 5), torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    w, b = cell.gates.weight, cell.gates.bias
    z = torch.nn.functional.conv2d(torch.cat([x, h], 1), w, b, padding=1)
    i, f, g, o = (z[:, 3 * k : 3 * k + 3] for k in range(4))
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    h_out, c_out = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new)
    torch.testing.assert_close(h_out, h_new)
    assert torch.all(b[3:6] == 1)  # forget-gate bias starts at 1
    h0, c0 = cell(x)  # no state: zeros
    torch.testing.assert_close(h0, cell(x, (torch.zeros(2, 3, 5, 5), torch.zeros(2, 3, 5, 5)))[0])


def test_roll_out_extends_and_uses_every_given_frame():
    torch.manual_seed(0)
    net = ConvLSTMNet(1, 3, 4, hidden=(4, 4), patch=2).eval()
    ctx = torch.randn(2, 3, 1, 8, 8)
    long = net(ctx)
    net.t_out = 2
    torch.testing.assert_close(net(ctx), long[:, :2])  # frame C + k does not depend on the horizon
    for j in range(3):  # every given frame reaches the first prediction (the cells' memory)
        bumped = ctx.clone()
        bumped[:, j] += 1
        assert (net(bumped)[:, 0] - long[:, 0]).abs().max() > 1e-4


def test_config_errors():
    spec = DataSpec((4, 1, 6, 6), modality="video")
    with pytest.raises(ConfigError, match="model.kernel=4"):
        build(ConvLSTMConfig, {"name": "convlstm", "kernel": 4}, "model")
    with pytest.raises(ConfigError, match="model.patch=4"):
        build_model(build(ConvLSTMConfig, {"name": "convlstm", "patch": 4}, "model"), spec)
    with pytest.raises(ConfigError, match="context_frames=4"):
        build_model(build(ConvLSTMConfig, {"name": "convlstm", "context_frames": 4}, "model"), spec)


def _moving_bars(n: int, g: torch.Generator) -> torch.Tensor:
    """Clips (n, 6, 1, 8, 8): a vertical bar moving one pixel per frame to the right (wrapping), random start."""
    start = torch.randint(0, 8, (n,), generator=g)
    cols = (start[:, None] + torch.arange(6)) % 8  # (n, T)
    x = -torch.ones(n, 6, 1, 8, 8)
    x[torch.arange(n)[:, None], torch.arange(6), 0, :, cols] = 1.0
    return x


def test_learns_constant_motion_better_than_copying_the_last_frame():
    torch.manual_seed(0)
    spec = DataSpec((6, 1, 8, 8), modality="video")
    model = build_model(build(ConvLSTMConfig, {"name": "convlstm", "hidden": (16,), "patch": 1}, "model"), spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(120):
        loss = model.loss({"x": _moving_bars(16, g)})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = _moving_bars(64, torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred = model.eval().sample(64, context=test)[:, 3:]
    copy_last = (test[:, 2:3] - test[:, 3:]).pow(2).mean()
    assert (pred - test[:, 3:]).pow(2).mean() < 0.2 * copy_last
