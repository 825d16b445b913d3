"""Space-time diffusion for video: every registered sampler runs on the space-time UNet, the temporal blocks mix the
frames (in order), the given frames reach the network and are kept in the samples, the training condition, and the
clear errors."""

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import registry
from genlab.config import build
from genlab.errors import ConfigError
from genlab.modalities.video import takes_context
from genlab.models import build_model
from genlab.models.video.diffusion import VideoDiffusionConfig
from genlab.nn.video import SpaceTimeUNet, TemporalMix
from genlab.spec import DataSpec

SPEC = DataSpec((4, 1, 8, 8), num_classes=3, modality="video")


def _model(**kw):
    torch.manual_seed(0)
    raw = {"name": "video_diffusion", "channels": [8, 8], "heads": 2, "timesteps": 20, "steps": 3, "context_frames": 2, **kw}
    return build_model(build(VideoDiffusionConfig, raw, "model"), SPEC).eval()


def _clips(n=3, seed=0):
    return torch.rand((n, *SPEC.shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("sampler", registry.list_samplers())
def test_every_sampler_runs_on_the_space_time_unet(sampler):
    model = _model(conditional=True)
    g = torch.Generator().manual_seed(0)
    x = model.sample(3, labels=torch.tensor([0, 1, 2]), generator=g, sampler=sampler, steps=3, guidance=2.0)
    assert x.shape == (3, *SPEC.shape) and torch.isfinite(x).all() and x.abs().max() <= 1


@pytest.mark.parametrize("kind", ["attention", "conv"])
def test_temporal_blocks_mix_the_frames_in_order(kind):
    torch.manual_seed(0)
    net = SpaceTimeUNet(1, frames=4, channels=(8, 8), temporal=kind, heads=2).eval()
    for m in net.modules():  # full-size temporal projections, so that the test sees the mixing clearly
        if isinstance(m, TemporalMix):
            torch.nn.init.normal_(m.proj.weight, std=0.5)
    x, c = torch.randn(2, 4, 1, 8, 8), torch.zeros(2)
    out = net(x, c)
    bumped = x.clone()
    bumped[:, 0] += 1.0
    assert (net(bumped, c)[:, 3] - out[:, 3]).abs().max() > 1e-3  # frame 0 reaches frame 3
    reversed_out = net(x.flip(1), c)
    assert (reversed_out.flip(1) - out).abs().max() > 1e-3  # the frames' order matters (not a set)


def test_given_frames_are_kept_and_reach_the_network():
    model, x = _model(), _clips()
    g = lambda: torch.Generator().manual_seed(5)
    out = model.sample(3, context=x, generator=g())
    torch.testing.assert_close(out[:, :2], x[:, :2])
    other = model.sample(3, context=_clips(seed=1), generator=g())
    assert (other[:, 2:] - out[:, 2:]).abs().max() > 1e-4  # same noise, other given frames: other future frames
    free = model.sample(3, generator=g())  # no context: whole clips
    assert free.shape == out.shape and (free[:, :2] - x[:, :2]).abs().max() > 1e-2


def test_training_condition():
    x = _clips(4)
    model = _model(p_context=1.0).train()  # context_stack is off by default (checkpoints from before it load unchanged)
    cond = model.training_condition(x)
    assert cond.shape == (4, 4, 2, 8, 8)
    torch.testing.assert_close(cond[:, :2, :1], x[:, :2])
    assert torch.all(cond[:, 2:] == 0) and torch.all(cond[:, :2, 1] == 1)
    assert torch.all(_model(p_context=0.0).train().training_condition(x) == 0)
    assert _model(context_frames=0).training_condition(x) is None


def test_stacked_context_gives_every_frame_all_given_frames():
    x = _clips(4)
    cond = _model(p_context=1.0, context_stack=True).train().training_condition(x)
    assert cond.shape == (4, 4, 2 + 2, 8, 8)  # own frame, mask, the 2 given frames
    torch.testing.assert_close(cond[:, :2, :1], x[:, :2])
    assert torch.all(cond[:, 2:, :2] == 0) and torch.all(cond[:, :2, 1] == 1)
    for t in range(4):  # the future frames too read both given frames, in order
        torch.testing.assert_close(cond[:, t, 2:], x[:, :2, 0])
    assert torch.all(_model(p_context=0.0, context_stack=True).train().training_condition(x) == 0)


def test_patched_unet_sees_every_pixel_and_keeps_the_layout():
    torch.manual_seed(0)
    net = SpaceTimeUNet(1, frames=4, channels=(8, 8), heads=2, size=8, patch=2).eval()
    x, c = torch.randn(2, 4, 1, 8, 8), torch.zeros(2)
    out = net(x, c)
    assert out.shape == x.shape
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:  # each of a patch's four pixels reaches the output
        bumped = x.clone()
        bumped[:, 1, 0, 4 + i, 4 + j] += 1.0
        assert (net(bumped, c) - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="patch=3"):
        SpaceTimeUNet(1, frames=4, channels=(8,), size=8, patch=3)
    with pytest.raises(ConfigError, match="model.patch=3"):
        _model(patch=3)


def test_errors_and_the_modality_view():
    with pytest.raises(ConfigError, match="lowres"):
        build(VideoDiffusionConfig, {"name": "video_diffusion", "lowres": 2}, "model")
    with pytest.raises(ConfigError, match="context_frames=4"):
        _model(context_frames=4)
    with pytest.raises(ConfigError, match="generates whole clips only"):
        _model(context_frames=0).sample(2, context=_clips())
    with pytest.raises(ConfigError, match="expected clips"):
        _model().sample(2, context=_clips()[:, :, :, :4])
    with pytest.raises(ConfigError, match="video_diffusion generates clips"):
        build_model(build(VideoDiffusionConfig, {"name": "video_diffusion"}, "model"), DataSpec((1, 8, 8)))
    assert takes_context(_model()) and not takes_context(_model(context_frames=0))
