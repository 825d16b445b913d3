"""`genlab reflow`: the pairs are the sampler's own images of their noise, the reflow run trains on them from the teacher's
weights, and reflow straightens: a flow fitted to the pairs of a curved 2-D flow is far straighter than that flow."""

import numpy as np
import pytest
import torch

import genlab
from _gaussian import GaussianVelocity
from _threads import one_thread  # noqa: F401
from genlab import checkpoint as ckpt
from genlab.apps.reflow import make_pairs
from genlab.cli import main
from genlab.config import build
from genlab.errors import ConfigError
from genlab.metrics.straightness import flow_straightness
from genlab.models.fast.flow_matching import T_SCALE, FlowMatchingConfig, FlowMatchingModel
from genlab.spec import DataSpec

MU, S = torch.tensor([2.0, -1.0]), 0.3
TINY = ["train.batch_size=32", "train.warmup_steps=0", "train.progress=false", "train.n_samples=16", "eval.batch_size=16"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks run fastest on one thread


def fm(**kw):
    torch.manual_seed(0)
    return FlowMatchingModel(build(FlowMatchingConfig, {"width": 64, "depth": 2, **kw}, "model"), DataSpec((2,), encoding="continuous"))


def test_pairs_are_the_samplers_image_of_their_noise():
    model = fm().eval()
    pairs = make_pairs(model, 10, steps=3, batch_size=4)
    assert pairs["noise"].shape == pairs["x"].shape == (10, 2) and "y" not in pairs
    again = model.decode(torch.from_numpy(pairs["noise"]), steps=3)
    assert np.allclose(again.numpy(), pairs["x"], atol=1e-6)
    with pytest.raises(ConfigError, match="flow-matching"):
        make_pairs(object(), 4)


def test_reflow_straightens_a_curved_flow():
    teacher = fm().eval()
    teacher.net = GaussianVelocity(MU, S, T_SCALE)
    pairs = make_pairs(teacher, 4096, steps=100)
    student = fm(time_sampling="uniform")
    student._pairs = {k: torch.from_numpy(v) for k, v in pairs.items()}
    student.config.pairs = "in memory"
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    student.train()
    for _ in range(400):
        opt.zero_grad()
        student.loss({"x": torch.zeros(256, 2)})["loss"].backward()
        opt.step()
    student.eval()
    before, after = flow_straightness(teacher, n=500)["straightness"], flow_straightness(student, n=500)["straightness"]
    assert before > 0.05 and after < 0.25 * before, (before, after)
    x = student.sample(2000, steps=1, generator=torch.Generator().manual_seed(1))  # one step lands on the data
    assert (x.mean(0) - MU).abs().max() < 0.1 and (x.std(0) - S).abs().max() < 0.1


def test_reflow_cli_trains_from_the_teachers_weights(tmp_path):
    data = ["data.name=moons", "data.n_train=256", "data.n_test=64"]
    teacher = genlab.train(
        {
            "data": {"name": "moons", "n_train": 256, "n_test": 64},
            "model": {"name": "flow_matching", "width": 16, "depth": 1},
            "train": {"max_steps": 3},
        },
        TINY,
        run_dir=tmp_path / "fm",
    ).run_dir
    out = tmp_path / "rf2"
    args = ["reflow", str(teacher), *data, *TINY, "train.max_steps=2", "train.lr=1e-30", "train.ema_decay=0"]
    assert main([*args, "--out", str(out), "--pairs", "40", "--pair-steps", "2", "--straightness-n", "8"]) == 0
    with np.load(tmp_path / "rf2_pairs.npz") as f:
        assert f["noise"].shape == f["x"].shape == (40, 2)
    cfg = ckpt.read_run_config(out)
    assert cfg.model.pairs == str((tmp_path / "rf2_pairs.npz").resolve()) and cfg.model.init_from == str(teacher.resolve())
    t_net, s_net = genlab.load(teacher, ema=False).net.state_dict(), genlab.load(out).net.state_dict()
    assert all(torch.allclose(t_net[k], s_net[k], atol=1e-6) for k in t_net)
