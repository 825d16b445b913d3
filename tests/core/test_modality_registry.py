"""A modality registered inside a test is used by the trainer's previews, `genlab sample`, `genlab eval` and the
report, with no edit to any of them; and a trained model carries its run context like a loaded one."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import genlab
from genlab.cli import main
from genlab.data import ArrayDataset
from genlab.modalities import Modality, modality_of
from genlab.registry import register_dataset, register_modality
from genlab.report.html import write_report
from genlab.spec import DataSpec


@register_modality("test_waves")
class WavesModality(Modality):
    """Toy 'waveforms': vectors written one per line as text, previewed as a PNG strip, scored by their mean energy."""

    suffixes = (".waves", ".npz")

    def preview(self, x, path, *, spec, labels=None, reference=None):
        arr = ((x.clamp(-3, 3) + 3) / 6 * 255).to(torch.uint8).numpy()
        Image.fromarray(arr).save(path)
        return path

    def write(self, x, labels, path, spec):
        if str(path).endswith(".waves"):
            with open(path, "w") as f:
                f.writelines(" ".join(f"{v:.4f}" for v in row) + "\n" for row in x.tolist())
            return path
        return super().write(x, labels, path, spec)

    def sample_metrics(self, model, cfg, test, sample_kwargs=None):
        x, _ = genlab.sample(model, cfg.eval.n_samples, seed=cfg.eval.seed, **(sample_kwargs or {}))
        return {"energy": float(x.pow(2).mean()), "energy_data": float(test.x.pow(2).mean())}, {"energy": "mean square"}


@register_dataset("test_waves")
def _waves(cfg, split):
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = 256 if split == "train" else 64
    t = torch.linspace(0, 1, 16)
    x = torch.sin(2 * torch.pi * (t * (1 + torch.rand(n, 1, generator=g)))) + 0.1 * torch.randn(n, 16, generator=g)
    return ArrayDataset(x, None, DataSpec((16,), encoding="continuous", modality="test_waves"), "test_waves")


@pytest.fixture
def waves_run(tmp_path):
    cfg = {
        "data": {"name": "test_waves"},
        "model": {"name": "test_gaussian"},
        "train": {"batch_size": 32, "max_steps": 40, "lr": 0.05, "warmup_steps": 0, "progress": False, "n_samples": 8},
        "eval": {"n_samples": 200},
    }
    return genlab.train(cfg, run_dir=tmp_path / "run")


def test_a_new_modality_is_trained_written_evaluated_and_reported(waves_run, tmp_path, capsys):
    run = waves_run.run_dir
    assert isinstance(modality_of(waves_run.model.spec), WavesModality)
    preview = Image.open(run / "samples" / "final.png")
    assert preview.size == (16, 8)  # the modality's own preview: 8 samples of 16 values

    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.waves")]) == 0
    rows = (tmp_path / "s.waves").read_text().splitlines()
    assert len(rows) == 5 and len(rows[0].split()) == 16
    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.png")]) == 2
    assert "expected a .waves or .npz file name for test_waves samples" in capsys.readouterr().err

    assert main(["eval", str(run)]) == 0
    ev = json.loads((run / "eval.json").read_text())
    # The model learnt the data's mean and variance: its samples' energy is close to the data's.
    assert ev["energy"] == pytest.approx(ev["energy_data"], rel=0.25)
    assert ev["conventions"]["samples"] == {"energy": "mean square"}

    out = write_report([run], tmp_path / "report")
    assert "final.png" in out["html"].read_text()


def test_trained_and_loaded_models_carry_the_same_run_context(waves_run):
    trained, loaded = waves_run.model, genlab.load(waves_run.run_dir)
    assert trained.run.steps == loaded.run.steps == 40
    assert trained.run.config.to_dict() == loaded.run.config.to_dict()
    a = genlab.evaluate(trained, ["eval.n_samples=100"])
    b = genlab.evaluate(loaded, ["eval.n_samples=100"])
    assert a["nll"] == pytest.approx(b["nll"]) and a["energy"] == pytest.approx(b["energy"]) and a["step"] == 40


def test_a_hand_built_model_has_an_empty_run_context():
    from genlab.config import build
    from genlab.models import build_model
    from genlab.registry import model

    cfg_cls, _ = model("test_gaussian")
    m = build_model(build(cfg_cls, {"name": "test_gaussian"}, "model"), DataSpec((4,), encoding="continuous"))
    assert m.run.config is None and m.run.steps == 0
    with pytest.raises(genlab.ConfigError, match="has no run config"):
        genlab.evaluate(m)
