"""Numerical faults: a NaN/Inf loss or gradient is reported with the step and the loss term or parameter at fault;
train.on_nonfinite=stop stops with the last good checkpoint kept, =skip drops that update (up to train.max_consecutive_skips in a row)."""

import json

import pytest
import torch

from genlab import checkpoint as ckpt
from genlab.config import build_run_config
from genlab.errors import ConfigError, TrainingError
from genlab.train.curves import read_metrics
from genlab.train.trainer import Trainer


def trainer(cfg, run_dir, *overrides):
    return Trainer(build_run_config(cfg, list(overrides)), run_dir)


def fault_at(t, calls, kind="loss"):
    """Make the model's loss (kind="loss") or only the gradient of log_sigma (kind="grad") non-finite at these calls."""
    model, loss, n = t.model, t.model.loss, [0]

    def faulty(batch, phase=None):
        out = loss(batch, phase)
        n[0] += 1
        if n[0] in calls:
            if kind == "loss":
                out["loss"] = out["loss"] * float("inf")
            else:  # d sqrt(z)/dz = inf at z = 0, times dz/dlog_sigma = 0: a NaN gradient under a finite loss
                out["loss"] = out["loss"] + (0 * model.log_sigma.sum()).sqrt()
        return out

    model.loss = faulty


def events(run_dir, kind):
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("event") == kind]


def test_stop_names_the_loss_terms_and_keeps_the_checkpoint(tmp_path, gauss_cfg):
    gauss_cfg["model"]["nan_after"] = 23
    with pytest.raises(TrainingError, match=r"non-finite loss at step 24 \(loss term loss=nan\).*step 20.*on_nonfinite=skip"):
        trainer(gauss_cfg, tmp_path / "run").fit()
    assert ckpt.load_state(tmp_path / "run" / "state.pt")["step"] == 20
    assert [e["step"] for e in events(tmp_path / "run", "non-finite loss")] == [24]


def test_stop_names_the_parameter_whose_gradient_is_not_finite(tmp_path, gauss_cfg):
    t = trainer(gauss_cfg, tmp_path / "run")
    fault_at(t, {7}, kind="grad")
    with pytest.raises(TrainingError, match=r"at step 7 \(gradient of log_sigma \(grad_norm=nan\)\).*no checkpoint was written yet"):
        t.fit()


def test_a_skipped_step_applies_nothing(tmp_path, gauss_cfg):
    t = trainer(gauss_cfg, tmp_path / "run", "train.on_nonfinite=skip", "train.ema_decay=0.9")
    fault_at(t, {3})
    logs = {}
    assert t.train_step(logs) and t.train_step(logs)
    params = [p.detach().clone() for p in t.model.parameters()]
    moments = [s["exp_avg"].clone() for s in t.opts[0].state.values()]
    ema = [p.detach().clone() for p in t.ema.model.parameters()]
    before = {k: v.clone() for k, v in logs.items()}
    assert not t.train_step(logs)
    assert t.fault == "loss term loss=inf" and t.step == 2
    assert all(torch.equal(a, b) for a, b in zip(params, t.model.parameters()))
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(moments, t.opts[0].state.values()))
    assert all(torch.equal(a, b) for a, b in zip(ema, t.ema.model.parameters()))
    assert logs.keys() == before.keys() and all(torch.equal(logs[k], before[k]) for k in logs)
    assert t.train_step(logs) and t.step == 3  # the next batch trains as usual


def test_skip_restores_running_statistics(tmp_path, gauss_cfg):
    """A bad batch must not poison buffers such as batch-norm running means: they are restored when the step is skipped."""
    t = trainer(gauss_cfg, tmp_path / "run", "train.on_nonfinite=skip")
    t.model.register_buffer("running", torch.ones(3))
    loss = t.model.loss

    def poisoning(batch, phase=None):
        out = loss(batch, phase)
        t.model.running.mul_(out["loss"].detach())  # a loss of inf makes the statistics inf
        return out

    t.model.loss = poisoning
    fault_at(t, {1})
    assert not t.train_step({})
    assert torch.equal(t.model.running, torch.ones(3))


def test_skip_goes_on_and_counts_skipped_steps(tmp_path, gauss_cfg):
    run = tmp_path / "run"
    t = trainer(gauss_cfg, run, "train.on_nonfinite=skip")
    fault_at(t, {7, 8, 19})
    res = t.fit()
    assert res.status == "done" and res.step == 30
    skipped = events(run, "skipped step")
    assert [(e["step"], e["skipped"], e["consecutive"]) for e in skipped] == [(7, 1, 1), (8, 2, 2), (19, 3, 1)]
    assert "non-finite loss term loss=inf at step 7" in skipped[0]["message"]
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30] and all(r["loss"] == r["loss"] for r in rows)  # no NaN averages
    assert ckpt.load_state(run / "state.pt")["skipped"] == {"total": 3, "consecutive": 0}
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


def test_skip_stops_after_max_consecutive_skips_in_a_row_with_the_last_good_checkpoint(tmp_path, gauss_cfg):
    gauss_cfg["model"]["nan_after"] = 12
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"non-finite loss at step 16 \(loss term loss=nan\) after 3 skipped steps in a row"):
        trainer(gauss_cfg, run, "train.on_nonfinite=skip", "train.max_consecutive_skips=3").fit()
    assert [e["step"] for e in events(run, "skipped step")] == [13, 14, 15]
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["event"] == "non-finite loss"
    assert ckpt.load_state(run / "state.pt")["step"] == 10
    state = ckpt.load_state(run / "state.pt")
    assert all(torch.isfinite(s["exp_avg"]).all() for s in state["optimizers"][0]["state"].values())


def test_two_phase_model_names_the_phase(tmp_path):
    cfg = {
        "data": {"name": "test_images"},
        "model": {"name": "test_twophase", "n_critic": 1},
        "train": {"batch_size": 16, "max_steps": 4, "progress": False, "warmup_steps": 0},
    }
    t = trainer(cfg, tmp_path / "run")
    fault_at(t, {4})  # the generator's loss of step 2 (calls: d, g, d, g)
    with pytest.raises(TrainingError, match=r"at step 2 \(loss term g/loss=inf\)"):
        t.fit()


@pytest.mark.parametrize(
    "override, match", [("train.on_nonfinite=ignore", "one of 'stop', 'skip'"), ("train.max_consecutive_skips=0", ">= 1")]
)
def test_bad_settings_are_refused(gauss_cfg, override, match):
    with pytest.raises(ConfigError, match=match):
        build_run_config(gauss_cfg, [override])
