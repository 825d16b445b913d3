"""Live monitoring and honest progress: TensorBoard scalars and sample images beside metrics.jsonl, loss.png on an
interrupted run, the resume line, overrides anywhere on the command line, --threads."""

from __future__ import annotations

import pytest
import torch

import genlab
from genlab.cli import main
from genlab.train.curves import read_metrics

tensorboard = pytest.importorskip("tensorboard")


def events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_gets_every_logged_row_and_the_samples(tmp_path, gauss_cfg):
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    acc = events(res.run_dir)
    rows = [r for r in read_metrics(res.run_dir / "metrics.jsonl") if "loss" in r]
    logged = [(e.step, e.value) for e in acc.Scalars("loss")]
    assert [s for s, _ in logged] == [r["step"] for r in rows]
    assert [v for _, v in logged] == pytest.approx([r["loss"] for r in rows], rel=1e-6)
    assert acc.Images("samples")[-1].step == res.step  # the final sample grid


def test_no_tensorboard_when_not_asked(tmp_path, gauss_cfg):
    res = genlab.train(gauss_cfg, ['train.loggers=["jsonl"]'], run_dir=tmp_path / "run")
    assert not (res.run_dir / "tb").exists() and (res.run_dir / "metrics.jsonl").is_file()
    with pytest.raises(genlab.ConfigError, match="unknown logger 'tensorbard'"):
        genlab.train(gauss_cfg, ['train.loggers=["tensorbard"]'], run_dir=tmp_path / "other")


def test_resume_is_said_out_loud_and_overrides_go_anywhere(tmp_path, gauss_cfg, capsys):
    import tomli_w

    preset = tmp_path / "tiny.toml"
    preset.write_text(tomli_w.dumps(gauss_cfg))
    run = tmp_path / "run"
    # Overrides after an option, and --threads: once rejected as "unrecognized arguments".
    assert main(["train", str(preset), "--run", str(run), "train.max_steps=10", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert f"{run}: no checkpoint yet: starting from step 0" in err
    assert genlab.load(run).run.config.train.num_threads == 1
    assert main(["train", str(preset), "train.max_steps=20", "--run", str(run), "--threads", "1"]) == 0
    assert f"resuming {run} from step 10 (checkpoint of " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", str(preset), "--run", str(run), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_an_interrupted_run_has_its_loss_curves(tmp_path, gauss_cfg, monkeypatch):
    from genlab.train import trainer as T

    real = T.Trainer.train_step

    def stop_after_15(self, logs):
        ok = real(self, logs)
        if self.step == 15:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)
        return ok

    monkeypatch.setattr(T.Trainer, "train_step", stop_after_15)
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    assert res.status == "interrupted" and (res.run_dir / "loss.png").is_file()


def test_sample_and_eval_take_threads(tmp_path, gauss_cfg):
    res = genlab.train(gauss_cfg, run_dir=tmp_path / "run")
    before = torch.get_num_threads()
    try:
        assert main(["sample", str(res.run_dir), "--n", "4", "--out", str(tmp_path / "s.npz"), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
