"""The few-step presets: valid configs on the diffusion preset's network (the benchmark compares them at equal budgets); the
distillation and tuning presets name the run they start from and say so when it is absent."""

from pathlib import Path

import pytest
import torch

from genlab.config import build_run_config
from genlab.errors import CheckpointError
from genlab.models import build_model
from genlab.spec import DataSpec

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "fast").glob("*.toml"))
SPEC = DataSpec((1, 28, 28), num_classes=10, encoding="8bit", dequantized=True)


def net_shapes(cfg_path):
    model = build_model(build_run_config(cfg_path).model, SPEC)  # a teacher / pairs / init run is read only by loss()
    return {k: tuple(v.shape) for k, v in model.net.state_dict().items()}


def test_the_five_presets_exist_and_build():
    assert [p.name for p in PRESETS] == ["cd_fmnist.toml", "ect_fmnist.toml", "fm_fmnist.toml", "ict_fmnist.toml", "rf2_fmnist.toml"]
    for p in PRESETS:
        cfg = build_run_config(p)
        build_model(cfg.model, SPEC)
        assert cfg.train.max_time is not None and cfg.data.name == "fashion_mnist"


def test_flow_presets_train_the_diffusion_presets_network():
    """The same UNet, and each loss is one forward and one backward pass of it: the same FLOPs per training image (0.61 G)."""
    ddpm = net_shapes(ROOT / "configs" / "diffusion" / "ddpm_fmnist.toml")
    for name in ("fm_fmnist.toml", "rf2_fmnist.toml", "cd_fmnist.toml", "ict_fmnist.toml", "ect_fmnist.toml"):
        assert net_shapes(ROOT / "configs" / "fast" / name) == ddpm, name


@pytest.mark.parametrize("preset, key", [("cd_fmnist.toml", "teacher"), ("ect_fmnist.toml", "init_from")])
def test_the_two_stage_presets_need_their_first_run(tmp_path, monkeypatch, preset, key):
    monkeypatch.chdir(tmp_path)  # runs/fm_fmnist does not exist here
    cfg = build_run_config(ROOT / "configs" / "fast" / preset)
    assert getattr(cfg.model, key) == "runs/fm_fmnist"
    model = build_model(cfg.model, SPEC).train()
    with pytest.raises(CheckpointError, match="runs/fm_fmnist"):
        model.loss({"x": torch.zeros(2, 1, 28, 28)})
