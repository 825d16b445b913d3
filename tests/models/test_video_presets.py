"""Every video preset builds its model on its protocol's clips (without generating the data set); the CPU-size ones and
the standard protocol's 30-minute ones also take one training step's loss and gradient on two random clips (a GPU-size
step costs tens of CPU seconds): a typo in a key or a shape that does not fit fails here."""

from pathlib import Path

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab.config import build_run_config
from genlab.data.video import PROTOCOLS
from genlab.models import build_model
from genlab.spec import DataSpec

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "video").glob("*.toml"))


def test_the_presets_are_all_here():
    names = {p.stem for p in PRESETS}
    for model in ("simvp", "convlstm", "vdm", "videogpt"):
        assert f"{model}_moving_mnist_cpu" in names
    assert {"simvp_moving_mnist", "vdm_moving_mnist", "videogpt_moving_mnist"} <= names  # the standard protocol
    assert {"simvp_moving_mnist_30min", "vdm_moving_mnist_30min", "videogpt_moving_mnist_30min"} <= names  # its CPU-size presets


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_builds_and_steps_on_its_protocol(preset):
    cfg = build_run_config(preset)
    proto = PROTOCOLS[cfg.data.name]
    T, size = proto.n_frames, proto.image_size
    spec = DataSpec((T, 1, size, size), num_classes=10, encoding="8bit", modality="video")
    torch.manual_seed(0)
    model = build_model(cfg.model, spec)
    assert getattr(model, "context_frames", T // 2) in (T // 2, 0)  # half the clip is given, as the protocols say
    if size > 32 and not preset.stem.endswith("_30min"):  # GPU size
        return
    x = torch.randint(0, 256, (2, T, 1, size, size)).float() / 127.5 - 1
    batch = {"x": x, "y": torch.tensor([1, 2])}
    for ph in model.phases():
        loss = model.loss(batch, phase=ph.name if len(model.phases()) > 1 else None)["loss"]
        assert torch.isfinite(loss)
        loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
