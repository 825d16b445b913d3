"""`genlab distill`: the student's config comes from the teacher run (network, data, budget) or a preset, names the teacher,
trains through the trainer and samples in one step; a student started from an EDM teacher holds its weights; bad teachers fail early."""

import pytest
import torch

import genlab
from genlab import checkpoint as ckpt
from genlab.apps.distill import distill, distill_config
from genlab.cli import main
from genlab.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """One tiny EDM-formulation diffusion run for the module (an EDM teacher can also start a student's weights)."""
    cfg = {
        "data": {"name": "test_images", "dequantize": False},
        "model": {"name": "diffusion", "formulation": "edm", "channels": [8, 8], "attn_resolutions": [4], "heads": 2, "timesteps": 20},
        "train": {"batch_size": 16, "max_steps": 3, "progress": False, "warmup_steps": 0, "n_samples": 4},
        "eval": {"batch_size": 8, "n_batches": 1},  # the end-of-training bound on 8 test images only
    }
    return genlab.train(cfg, run_dir=tmp_path_factory.mktemp("teacher") / "run", resume="never").run_dir


TINY = ["train.max_steps=2", "train.batch_size=16", "train.warmup_steps=0", "train.progress=false", "train.n_samples=4"]


def test_distill_cli_trains_a_one_step_student(teacher, tmp_path):
    out = tmp_path / "student"
    assert main(["distill", str(teacher), *TINY, "model.teacher_steps=4", "--out", str(out)]) == 0
    cfg = ckpt.read_run_config(out)
    assert cfg.model.name == "consistency" and cfg.model.teacher == str(teacher.resolve())
    assert cfg.model.channels == (8, 8) and cfg.data.name == "test_images"  # the teacher's network and data
    student = genlab.load(out)
    assert int(student.train_step) == 2
    x = student.sample(3, steps=1, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 8, 8) and x.abs().max() <= 1
    assert main(["sample", str(out), "--steps", "2", "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0


def test_student_starts_from_an_edm_teacher(teacher, tmp_path):
    res = distill(
        teacher, out=tmp_path / "student", overrides=[*TINY, "train.lr=1e-30", "model.init_from_teacher=true", "train.ema_decay=0"]
    )
    t_net, s_net = genlab.load(teacher, ema=False).net.state_dict(), genlab.load(res.run_dir).net.state_dict()
    assert all(torch.allclose(t_net[k], s_net[k], atol=1e-6) for k in t_net)


def test_teacher_must_be_a_denoising_run(tmp_path):
    run = genlab.train(
        {
            "data": {"name": "test_images"},
            "model": {"name": "test_gaussian"},
            "train": {"batch_size": 16, "max_steps": 1, "progress": False},
        },
        run_dir=tmp_path / "gauss",
    ).run_dir
    with pytest.raises(ConfigError, match="diffusion or flow-matching"):
        distill_config(run)
    with pytest.raises(CheckpointError, match="not a genlab run directory"):
        distill_config(tmp_path / "nowhere")  # CheckpointError: not a run directory


def test_consistency_tuning_cli_starts_at_the_flow_and_samples_in_one_step(tmp_path, capsys):
    """`genlab train <ect preset> model.init_from=RUN`: f starts at a flow-matching run's network (with lr ~ 0 the weights stay
    the flow's), trains through the trainer, resumes with its own weights, and `genlab sample --steps 1` works."""
    net = {"channels": [8, 8], "attn_resolutions": [4], "heads": 2}
    flow = genlab.train(
        {
            "data": {"name": "test_images", "dequantize": False},
            "model": {"name": "flow_matching", **net, "steps": 2, "likelihood_steps": 1},
            "train": {"batch_size": 16, "max_steps": 3, "progress": False, "warmup_steps": 0, "n_samples": 4},
            "eval": {"batch_size": 8, "n_batches": 1, "n_examples": 8},
        },
        run_dir=tmp_path / "flow",
        resume="never",
    ).run_dir
    preset = tmp_path / "ect.toml"
    preset.write_text(
        '[data]\nname = "test_images"\n[model]\nname = "consistency"\nparametrisation = "flow"\nlevels = "ect"\n'
        "channels = [8, 8]\nattn_resolutions = [4]\nheads = 2\ncurriculum_steps = 4\n"
    )
    out = tmp_path / "ect"
    args = ["train", str(preset), f"model.init_from={flow}", *TINY, "train.lr=1e-30", "train.ema_decay=0", "--run", str(out)]
    assert main(args) == 0
    f_net, s_net = genlab.load(flow, ema=False).net.state_dict(), genlab.load(out).net.state_dict()
    assert all(torch.allclose(f_net[k], s_net[k], atol=1e-6) for k in f_net)
    assert int(genlab.load(out).train_step) == 2
    flow.rename(tmp_path / "moved")  # a resumed run has its own weights: it needs no source run
    assert main([*args[:-2], "train.max_steps=3", "--run", str(out)]) == 0  # resumed: one more step, no second copy
    (tmp_path / "moved").rename(flow)
    assert int(genlab.load(out).train_step) == 3 and int(genlab.load(out).initialized) == 1
    assert main(["sample", str(out), "--steps", "1", "--n", "4", "--out", str(tmp_path / "s.npz")]) == 0
    edm = tmp_path / "edm"
    assert main(["train", str(preset), f"model.init_from={flow}", "model.parametrisation=edm", *TINY, "--run", str(edm)]) != 0
    assert "fits model.parametrisation='flow', not 'edm'" in capsys.readouterr().err
