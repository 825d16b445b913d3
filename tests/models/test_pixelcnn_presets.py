"""Every preset in configs/autoregressive builds on its own data, gives a finite loss with gradients to every
parameter of each phase, and samples (the contract checks, on the presets' real sizes)."""

from pathlib import Path

import pytest
import torch

from genlab.config import build_run_config
from genlab.data import iterate, load_dataset
from genlab.models import build_model

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "autoregressive").glob("*.toml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_builds_trains_one_step_and_samples(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # data.root of the text preset is relative to the repository
    cfg = build_run_config(path)
    ds, transform = load_dataset(cfg.data, "test")
    torch.manual_seed(0)
    model = build_model(cfg.model, transform.spec)
    batch = next(iterate(ds, transform, 4))
    model.train()
    for ph in model.phases():
        model.zero_grad(set_to_none=True)
        out = model.loss(batch, phase=ph.name)
        assert torch.isfinite(out["loss"])
        out["loss"].backward()
        assert all(p.grad is not None for p in ph.params), ph.name
    model.eval()
    if transform.spec.encoding == "tokens":
        x = model.sample(3, generator=torch.Generator().manual_seed(0), temperature=0.8, top_p=0.95)
        assert x.shape == (3, *transform.spec.shape) and x.dtype == torch.long
    assert cfg.train.max_time is not None and cfg.train.max_time <= 600
