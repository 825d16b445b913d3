"""The audio presets (configs/audio/): valid configs on the CPU-size spoken digits (clips, or their 32 x 32 log-mel
images), class-conditional, 20 minutes of training at most, and each model takes a training step on full-size data."""

from pathlib import Path

import pytest
import torch

from genlab.config import build_run_config
from genlab.data.audio_spectrogram import MelParams, mel_image
from genlab.models import build_model
from genlab.spec import DataSpec

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "audio").glob("*.toml"))
SPEC = DataSpec((1, 8000), num_classes=10, encoding="continuous", modality="waveform")


def test_the_presets_exist():
    names = [p.name for p in PRESETS]
    assert names == ["diffwave_digits.toml", "specdiff_digits.toml", "specgan_digits.toml", "wavegan_digits.toml", "wavenet_digits.toml"]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_is_conditional_within_budget_and_takes_a_step(path):
    cfg = build_run_config(path)
    assert cfg.data.name in ("spoken_digits_8k", "spoken_digits_mel") and cfg.model.conditional and 0 < cfg.train.max_time <= 1200
    torch.manual_seed(0)
    t = torch.arange(8000) / 8000
    x = (0.5 * torch.sin(2 * torch.pi * 300 * t)).expand(2, 1, 8000).contiguous()
    spec = SPEC
    if cfg.data.name == "spoken_digits_mel":
        p = MelParams()
        spec, x = p.spec(tuple(str(k) for k in range(10))), mel_image(x, p)
    model = build_model(cfg.model, spec)
    batch = {"x": x, "y": torch.tensor([3, 7])}
    for phase in model.phases():
        out = model.loss(batch, phase=phase.name)
        assert torch.isfinite(out["loss"])
        out["loss"].backward()
