"""The HTML report embeds a waveform run's preview clips (samples/final/*.wav) as self-contained audio players and
a video run's preview animation (samples/final.gif)."""

import base64
import re

import numpy as np
import pytest

import genlab
from genlab.report.html import MAX_PLAYERS, write_report

sf = pytest.importorskip("soundfile", reason="audio previews need soundfile (pip install soundfile)")


def test_report_embeds_the_preview_clips(tmp_path):
    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 32, "max_steps": 4, "warmup_steps": 1, "log_every": 2, "progress": False},
        "eval": {"batch_size": 64, "n_batches": 1},
    }
    run = tmp_path / "run"
    genlab.train(cfg, run_dir=run)
    clips = run / "samples" / "final"
    clips.mkdir()
    for i in range(MAX_PLAYERS + 2):
        sf.write(str(clips / f"{i:02d}_seven.wav"), np.full(80, i / 100, np.float32), 8000, subtype="PCM_16")
    page = write_report([run], tmp_path / "report")["html"].read_text(encoding="utf-8")
    srcs = re.findall(r'<audio controls preload="none" src="data:audio/wav;base64,([A-Za-z0-9+/=]+)">', page)
    assert len(srcs) == MAX_PLAYERS
    assert base64.b64decode(srcs[0]) == (clips / "00_seven.wav").read_bytes()
    assert "<figcaption>09_seven</figcaption>" in page and "11_seven" not in page


def test_report_plays_a_video_runs_preview_gif(tmp_path):
    """A video preview strip (samples/final.png) comes with its animation (final.gif), which the page embeds as is."""
    import torch

    from genlab import registry
    from genlab.spec import DataSpec

    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 32, "max_steps": 2, "warmup_steps": 1, "log_every": 1, "progress": False},
        "eval": {"batch_size": 64, "n_batches": 1},
    }
    run = tmp_path / "run"
    genlab.train(cfg, run_dir=run)
    clips = torch.rand(2, 3, 1, 8, 8) * 2 - 1
    registry.modality("video").preview(clips, run / "samples" / "final.png", spec=DataSpec((3, 1, 8, 8), modality="video"))
    gif = run / "samples" / "final.gif"
    assert gif.is_file()
    page = write_report([run], tmp_path / "report")["html"].read_text(encoding="utf-8")
    srcs = re.findall(r'<img class="grid" src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(srcs) == 1 and base64.b64decode(srcs[0]) == gif.read_bytes()
