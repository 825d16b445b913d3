"""The trainer: exact resume, NaN stops with the checkpoint intact, accumulation, EMA, budgets."""

import json

import pytest
import torch

import genlab
from _models import train_until_power_cut
from genlab import checkpoint as ckpt
from genlab.errors import CheckpointError, TrainingError
from genlab.train.curves import read_metrics


def losses(run_dir):
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]


def weights(run_dir, name="model.safetensors"):
    from safetensors.torch import load_file

    return load_file(str(run_dir / name))


def test_trains_and_writes_run_directory(tmp_path, gauss_cfg):
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    run = res.run_dir
    assert res.status == "done" and res.step == 30
    for f in ["config.toml", "model.safetensors", "state.pt", "metrics.jsonl", "loss.png", "samples/final.png"]:
        assert (run / f).exists(), f
    curve = losses(run)
    assert [s for s, _ in curve] == [5, 10, 15, 20, 25, 30]
    assert curve[-1][1] < curve[0][1]  # it learns
    assert any("eval/bits_per_dim" in r for r in read_metrics(run / "metrics.jsonl"))


def test_resume_after_budget_extension_matches_uninterrupted(tmp_path, gauss_cfg):
    gauss_cfg["train"].update(schedule="constant")
    full = genlab.train(gauss_cfg, run_dir=tmp_path / "full")
    genlab.train(gauss_cfg, ["train.max_steps=15"], run_dir=tmp_path / "part")
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "part")  # same config, bigger budget: resumes
    assert res.step == 30
    assert losses(tmp_path / "part") == losses(full.run_dir)
    a, b = weights(full.run_dir), weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_mid_interval_with_cosine_schedule_matches(tmp_path, gauss_cfg):
    """Checkpoint at step 13 (between log lines) then resume: every logged loss equals the uninterrupted run's."""
    gauss_cfg["train"].update(ckpt_every=13, ema_decay=0.9)
    full = genlab.train(gauss_cfg, run_dir=tmp_path / "full")
    train_until_power_cut(gauss_cfg, tmp_path / "cut", 13)
    assert json.loads((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 10
    genlab.train(gauss_cfg, run_dir=tmp_path / "cut")
    assert losses(tmp_path / "cut") == losses(full.run_dir)
    for name in ["model.safetensors", "ema.safetensors"]:
        a, b = weights(full.run_dir, name), weights(tmp_path / "cut", name)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, gauss_cfg):
    gauss_cfg["model"]["nan_after"] = 23
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="non-finite loss at step 24.*step 20"):
        genlab.train(gauss_cfg, run_dir=run)
    assert ckpt.load_state(run / "state.pt")["step"] == 20
    assert int(ckpt.read_metadata(run / "model.safetensors")["step"]) == 20
    assert all(torch.isfinite(v).all() for v in weights(run).values())
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["event"] == "non-finite loss"


def test_gradient_accumulation_matches_full_batch(tmp_path, gauss_cfg):
    a = genlab.train(gauss_cfg, run_dir=tmp_path / "a")
    b = genlab.train(gauss_cfg, ["train.grad_accum=4"], run_dir=tmp_path / "b")
    for (s1, l1), (s2, l2) in zip(losses(a.run_dir), losses(b.run_dir)):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-5)


def test_ema_weights_are_saved_and_loaded(tmp_path, gauss_cfg):
    res = genlab.train(gauss_cfg, ["train.ema_decay=0.9"], run_dir=tmp_path / "run")
    ema, raw = genlab.load(res.run_dir), genlab.load(res.run_dir, ema=False)
    assert not torch.equal(ema.mu, raw.mu)
    assert torch.equal(raw.mu, weights(res.run_dir)["mu"])
    assert torch.equal(ema.mu, weights(res.run_dir, "ema.safetensors")["mu"])


def test_time_budget_stops(tmp_path, gauss_cfg):
    gauss_cfg["train"].pop("max_steps")
    gauss_cfg["train"]["max_time"] = 1.0
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    assert res.status == "done" and 1.0 <= res.elapsed < 5.0 and res.step > 10


def test_two_phase_model_steps_each_optimiser(tmp_path):
    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "test_twophase", "n_critic": 3},
        "train": {"batch_size": 16, "max_steps": 4, "log_every": 2, "progress": False, "warmup_steps": 0, "schedule": "constant"},
    }
    from genlab.config import build_run_config
    from genlab.train.trainer import Trainer

    t = Trainer(build_run_config(cfg), tmp_path / "run")
    assert [ph.name for ph in t.phases] == ["d", "g"] and len(t.opts) == 2
    assert t.opts[0].param_groups[0]["lr"] == pytest.approx(2 * t.opts[1].param_groups[0]["lr"])  # lr_scale
    res = t.fit()
    assert res.step == 4 and t.loader.served == 4 * (3 + 1)  # 3 critic batches + 1 generator batch per step
    assert {"d/loss", "g/loss", "d/d_real", "d/grad_norm"} <= set(read_metrics(tmp_path / "run" / "metrics.jsonl")[-1])


def test_existing_run_with_other_config_is_refused(tmp_path, gauss_cfg):
    genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    with pytest.raises(CheckpointError, match="different config.*train.lr"):
        genlab.train(gauss_cfg, ["train.lr=0.1"], run_dir=tmp_path / "run")
    with pytest.raises(CheckpointError, match="already exists"):
        genlab.train(gauss_cfg, run_dir=tmp_path / "run", resume="never")
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    assert res.status == "already done"


def test_foreign_directory_is_refused(tmp_path, gauss_cfg):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(CheckpointError, match="not a genlab run"):
        genlab.train(gauss_cfg, run_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    with pytest.raises(CheckpointError, match="cannot resume"):
        genlab.train(gauss_cfg, run_dir=tmp_path / "nothing", resume="always")


def test_bf16_autocast_runs_on_cpu(tmp_path, gauss_cfg):
    from genlab.config import build_run_config
    from genlab.train.trainer import Trainer

    t = Trainer(build_run_config(gauss_cfg, ["train.precision=bf16", "train.max_steps=10"]), tmp_path / "run")
    with t.autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    res = t.fit()
    assert res.step == 10 and all(torch.isfinite(p).all() for p in res.model.parameters())


def test_progress_bar_shows_loss_and_speed(tmp_path, gauss_cfg, capsys):
    genlab.train(gauss_cfg, ["train.progress=true", "train.max_steps=10"], run_dir=tmp_path / "run")
    err = capsys.readouterr().err
    assert "10/10" in err and "loss=" in err and "img_s=" in err


def test_cpu_training_flushes_subnormals_and_restores_the_default_after(tmp_path, gauss_cfg):
    """Subnormal floats (Adam's moments of dead units decaying toward 0) are many times slower on x86: flushed to zero
    while the trainer runs on the CPU (train.flush_denormal, default on), left as PyTorch's default after it returns."""
    from genlab.config import build_run_config
    from genlab.train.trainer import Trainer

    tiny = torch.tensor([1e-40])  # subnormal in float32
    assert tiny.item() != 0
    t = Trainer(build_run_config(gauss_cfg, ["train.max_steps=2"]), tmp_path / "run")
    assert (tiny * 1.0).item() == 0.0
    t.fit()
    genlab.train(gauss_cfg, ["train.max_steps=2"], run_dir=tmp_path / "run2")
    assert (tiny * 1.0).item() != 0.0
    Trainer(build_run_config(gauss_cfg, ["train.max_steps=2", "train.flush_denormal=false"]), tmp_path / "run3")
    assert (tiny * 1.0).item() != 0.0
