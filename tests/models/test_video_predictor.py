"""The SimVP video predictor: its loss, prediction from context (tensor or file), the clear error without context,
save/load, and that it learns a clip's motion on one batch."""

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import checkpoint as ckpt
from genlab.config import build
from genlab.errors import ConfigError
from genlab.models import build_model
from genlab.models.video.predictor import VideoPredictor, VideoPredictorConfig
from genlab.spec import DataSpec

SPEC = DataSpec((6, 1, 16, 16), num_classes=10, modality="video")


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = build(VideoPredictorConfig, {"name": "video_predictor", "hidden": 8, "translator_width": 16, "blocks": 1, **kw}, "model")
    return build_model(cfg, SPEC)


def _clips(n=4, seed=0):
    return torch.rand((n, *SPEC.shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_loss_is_the_mse_of_the_predicted_frames():
    model, x = _model(), _clips()
    assert model.context_frames == 3
    expected = (model.predict(x[:, :3]) - x[:, 3:]).pow(2).mean()
    torch.testing.assert_close(model.loss({"x": x})["loss"], expected)


def test_sample_needs_context_and_keeps_it():
    model, x = _model().eval(), _clips()
    with pytest.raises(ConfigError, match="context"):
        model.sample(4)
    with pytest.raises(ConfigError, match="expected clips"):
        model.sample(4, context=x[:, :, :, :8])
    with pytest.raises(ConfigError, match="4 clips given for 5"):
        model.sample(5, context=x)
    out = model.sample(4, context=x)
    assert out.shape == (4, *SPEC.shape) and out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(out[:, :3], x[:, :3])
    g = lambda s: torch.Generator().manual_seed(s)
    assert torch.equal(model.sample(4, context=x, generator=g(1)), model.sample(4, context=x, generator=g(2)))


def test_context_from_an_npz_file_matches_the_tensor(tmp_path):
    model = _model().eval()
    clips = torch.randint(0, 256, (3, *SPEC.shape), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    np.savez(tmp_path / "c.npz", clips=clips.numpy())
    from_file = model.sample(2, context=str(tmp_path / "c.npz"))
    torch.testing.assert_close(from_file, model.sample(2, context=clips.float() / 127.5 - 1))


def test_save_load_round_trip(tmp_path):
    model, x = _model().eval(), _clips()
    ckpt.save_weights(tmp_path / "w.safetensors", model, {"model": "video_predictor", "step": 0})
    other = _model(seed=5).eval()
    ckpt.load_weights(tmp_path / "w.safetensors", other)
    assert torch.equal(model.sample(4, context=x), other.sample(4, context=x))


@pytest.mark.usefixtures("one_thread")
def test_learns_a_moving_square():
    # A 2 x 2 square moving one pixel right per frame in 8 x 8 frames: after training on one batch the prediction error
    # falls well below that of copying the last given frame.
    spec = DataSpec((4, 1, 8, 8), modality="video")
    x = torch.full((6, *spec.shape), -1.0)
    for n in range(6):
        for t in range(4):
            x[n, t, 0, n : n + 2, t : t + 2] = 1.0
    torch.manual_seed(0)
    cfg = build(VideoPredictorConfig, {"name": "video_predictor", "hidden": 8, "levels": 1, "translator_width": 32, "blocks": 0}, "model")
    model = build_model(cfg, spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        model.loss({"x": x})["loss"].backward()
        opt.step()
    copy_last = (x[:, 1:2] - x[:, 2:]).pow(2).mean()
    assert model.loss({"x": x})["loss"] < 0.2 * copy_last


def test_bad_configs_fail_early():
    with pytest.raises(ConfigError, match="context_frames"):
        _model(context_frames=6)
    with pytest.raises(ConfigError, match="clips"):
        VideoPredictor(VideoPredictorConfig(), DataSpec((1, 16, 16)))
