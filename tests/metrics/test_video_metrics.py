"""Video-prediction metrics on known inputs: identical clips, constant offsets, hand-computed sums."""

import math

import pytest
import torch

from genlab.metrics.video import PSNR_CAP, frame_errors, prediction_metrics


def _clips(seed=0, shape=(3, 4, 1, 16, 16)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_identical_clips_mse_zero_psnr_inf_ssim_one():
    x = _clips()
    e = frame_errors(x, x.clone())
    assert e["mse"].shape == (3, 4)
    assert (e["mse"] == 0).all() and (e["mae"] == 0).all()
    assert torch.isinf(e["psnr"]).all() and (e["psnr"] > 0).all()
    torch.testing.assert_close(e["ssim"], torch.ones(3, 4, dtype=torch.float64))
    m = prediction_metrics(x, x)
    assert m["mse"] == 0 and m["psnr"] == PSNR_CAP and m["ssim"] == pytest.approx(1.0)
    assert len(m["mse_per_frame"]) == 4


def test_constant_offset_hand_computed():
    true = torch.full((2, 3, 1, 8, 8), -1.0)
    pred = true + 0.2  # 0.1 in [0, 1] units on each of 64 pixels
    e = frame_errors(pred, true)
    torch.testing.assert_close(e["mse"], torch.full((2, 3), 64 * 0.01, dtype=torch.float64))
    torch.testing.assert_close(e["mae"], torch.full((2, 3), 64 * 0.1, dtype=torch.float64))
    torch.testing.assert_close(e["psnr"], torch.full((2, 3), 20.0, dtype=torch.float64))  # 10 log10(1 / 0.01)


def test_per_frame_curve_and_ssim_order():
    true = _clips(1)
    noise = torch.randn(true.shape, generator=torch.Generator().manual_seed(2))
    pred = true.clone()
    pred[:, 2:] += 0.3 * noise[:, 2:]  # only the last two frames differ
    m = prediction_metrics(pred, true)
    assert m["mse_per_frame"][:2] == [0.0, 0.0] and min(m["mse_per_frame"][2:]) > 0
    assert m["psnr_per_frame"][0] == PSNR_CAP and math.isfinite(m["psnr_per_frame"][3])
    worse = frame_errors(true + 0.6 * noise, true)["ssim"]
    assert (frame_errors(true + 0.3 * noise, true)["ssim"] > worse).all()


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one shape"):
        frame_errors(_clips(), _clips()[:, :2])
