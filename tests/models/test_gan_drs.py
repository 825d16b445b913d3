"""Discriminator rejection sampling: the acceptance rule against its closed form, exact rejection sampling converging on
a known distribution, the GAN's sampler filtering with its critic (labels kept), the critic's training phase, and
random Fourier features."""

import json
import math

import pytest
import torch
from scipy import stats
from torch import nn

import genlab
from _models import train_until_power_cut
from genlab.config import build
from genlab.errors import ConfigError, GenlabError
from genlab.models.gan.drs import acceptance, rejection_sample
from genlab.models.gan.gan import GAN, GANConfig
from genlab.nn.embeddings import FourierFeatures
from genlab.spec import DataSpec

VEC = DataSpec((2,), encoding="continuous")


def test_acceptance_at_gamma_zero_is_exp_of_the_logit_gap():
    logits = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0])
    p = acceptance(logits, M=2.0, quantile=0.0)
    want = torch.exp(logits.double() - 2.0)
    assert torch.allclose(p[:-1], want[:-1], rtol=1e-4), (p, want)
    assert p[-1] > 0.99  # the best sample: exp(0) = 1 up to eps
    # gamma at a quantile: the proposal at that quantile of F is accepted with probability 1/2 (0.75 of 5 sorted values
    # is the fourth exactly), and the order of the logits is kept.
    q = acceptance(logits, M=2.0, quantile=0.75)
    assert abs(q[3].item() - 0.5) < 1e-9 and (q.diff() > 0).all()


def _uniform_proposals(gen):
    def propose(k):
        return torch.rand(k, 1, generator=gen, dtype=torch.float64), None

    return propose


def test_exact_rejection_sampling_draws_the_target_of_an_exact_density_ratio():
    """Proposals U(0, 1), critic logit log(2x) = log of the Beta(2, 1) density over the uniform's: with gamma = 0 the
    accepted samples follow Beta(2, 1) (CDF x^2), while the proposals do not."""
    gen = torch.Generator().manual_seed(0)
    score = lambda x, y: torch.log(2 * x[:, 0])  # noqa: E731
    x, y, st = rejection_sample(_uniform_proposals(gen), score, 3000, quantile=0.0, chunk=2048, generator=gen)
    assert y is None and x.shape == (3000, 1)
    assert stats.kstest(x[:, 0].numpy(), lambda v: v**2).pvalue > 0.01
    assert stats.kstest(x[:, 0].numpy(), "uniform").pvalue < 1e-6
    assert 0.4 < st["acceptance"] < 0.6  # E[x] = 1/2 of proposals pass with probability x
    # gamma at the 0.8 quantile of F = logit(x): acceptance sigmoid(logit(x) - logit(0.8)) = x / (4 - 3x), which accepts
    # 28.3% of proposals with mean 0.744 (numerical integrals), more selective than the exact sampler's 1/2 and 2/3.
    x2, _, st2 = rejection_sample(_uniform_proposals(gen), score, 3000, quantile=0.8, chunk=2048, generator=gen)
    assert abs(st2["acceptance"] - 0.283) < 0.03 and abs(x2.mean().item() - 0.744) < 0.015
    # Seeded calls repeat themselves.
    a, _, _ = rejection_sample(_uniform_proposals(torch.Generator().manual_seed(5)), score, 50, quantile=0.5,
                               generator=torch.Generator().manual_seed(5))  # fmt: skip
    b, _, _ = rejection_sample(_uniform_proposals(torch.Generator().manual_seed(5)), score, 50, quantile=0.5,
                               generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert torch.equal(a, b)


def test_hopeless_acceptance_is_a_clear_error():
    gen = torch.Generator().manual_seed(0)
    calls = []

    # One proposal of the burn-in batch sets M: every later one has acceptance exp(-50).
    def score(x, y):
        s = torch.full((len(x),), -50.0, dtype=torch.float64)
        s[0] = 0.0 if not calls else -50.0
        calls.append(1)
        return s

    with pytest.raises(GenlabError, match=r"accepted 1 of 10 samples after 2\d{3} proposals; raise drs_quantile"):
        rejection_sample(_uniform_proposals(gen), score, 10, quantile=0.0, chunk=64, generator=gen)


class DiskCritic(nn.Module):
    """A fixed critic: logit 0 inside the disk of radius 0.5 (of class 0; class 1: the half-plane x0 < -0.4), -30 outside."""

    def forward(self, x, y=None):
        inside = x.norm(dim=1) < 0.5 if y is None else torch.where(y == 0, x.norm(dim=1) < 0.5, x[:, 0] < -0.4)
        return torch.where(inside, 0.0, -30.0)


def make(spec=VEC, **kw):
    torch.manual_seed(0)
    cfg = {"name": "gan", "latent_dim": 4, "g_hidden": [16], "d_hidden": [16], "drs": True, "drs_fourier": 8, **kw}
    return GAN(build(GANConfig, cfg, "model"), spec)


def test_the_sampler_keeps_what_the_critic_accepts():
    gan = make()
    gan.R = DiskCritic()
    raw = gan.sample(2000, generator=torch.Generator().manual_seed(0), drs=False)
    assert (raw.norm(dim=1) >= 0.5).float().mean() > 0.05  # the untrained G puts mass outside the disk
    x = gan.sample(500, generator=torch.Generator().manual_seed(0), drs_quantile=0.5)
    assert x.shape == (500, 2) and (x.norm(dim=1) < 0.5).all()
    assert torch.equal(x, gan.sample(500, generator=torch.Generator().manual_seed(0), drs_quantile=0.5))
    # Class-conditional: every sample passes its own label's test, in the order of the labels asked for.
    cgan = make(DataSpec((2,), num_classes=2, encoding="continuous"), conditional=True)
    cgan.R = DiskCritic()
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1] * 25)
    raw = cgan.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(0), drs=False)
    assert (raw[labels == 1, 0] >= -0.4).float().mean() > 0.2
    x = cgan.sample(len(labels), labels=labels, generator=torch.Generator().manual_seed(0))
    assert (x[labels == 0].norm(dim=1) < 0.5).all() and (x[labels == 1, 0] < -0.4).all()


def test_drs_bad_input():
    with pytest.raises(ConfigError, match="no rejection critic"):
        make(drs=False).sample(4, drs=True)
    with pytest.raises(ConfigError, match=r"drs_quantile: expected a value in \[0, 1\)"):
        make().sample(4, drs_quantile=1.0)
    with pytest.raises(ConfigError, match="model.drs_start"):
        make(drs_start=1.0)


def test_the_rejection_critic_trains_from_its_start_and_round_trips(tmp_path):
    cfg = {
        "data": {"name": "8gaussians"},
        "model": {"name": "gan", "latent_dim": 4, "g_hidden": [32], "d_hidden": [32], "drs": True, "drs_start": 0.5},
        "train": {"max_steps": 200, "max_time": None, "batch_size": 64, "log_every": 20, "lr": 1e-3, "progress": False,
                  "num_threads": 1},
    }  # fmt: skip
    res = genlab.train(cfg, run_dir=tmp_path / "run")
    rows = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    with_r = [r["step"] for r in rows if "drs/loss" in r]
    assert with_r and min(with_r) > 100 and max(with_r) == 200
    # R separates real from generated samples of a barely trained G: its loss falls well below log 4.
    assert rows[-1]["drs/loss"] < 0.8 * math.log(4) and rows[-1]["drs/r_real"] > rows[-1]["drs/r_fake"]
    again = genlab.load(tmp_path / "run")
    assert torch.equal(again.R.features[0].B, res.model.R.features[0].B)
    x1, _ = genlab.sample(again, 300, seed=3)
    x2, _ = genlab.sample(res.model, 300, seed=3)
    assert torch.equal(x1, x2)


def test_fourier_features_are_sin_and_cos_of_a_fixed_projection():
    torch.manual_seed(0)
    f = FourierFeatures(2, 5, scale=3.0)
    x = torch.randn(7, 2)
    p = 2 * math.pi * x @ f.B
    assert torch.allclose(f(x), torch.cat([p.sin(), p.cos()], 1), atol=1e-5)
    assert 1.0 < f.B.std() < 6.0 and "B" in f.state_dict()


def test_a_run_cut_after_the_critic_started_resumes_exactly(tmp_path):
    """A checkpoint at step 26 (R started at step 20), the process dies, the run resumes: the weights of all three
    players, and their EMA, equal the uninterrupted run's."""
    from safetensors.torch import load_file

    cfg = {
        "data": {"name": "8gaussians"},
        "model": {"name": "gan", "latent_dim": 4, "g_hidden": [16], "d_hidden": [16], "drs": True, "drs_fourier": 8,
                  "pack": 2, "regularizers": ["r1"]},
        "train": {"max_steps": 40, "max_time": None, "batch_size": 32, "log_every": 10, "ckpt_every": 13, "ema_decay": 0.9,
                  "progress": False, "num_threads": 1},
    }  # fmt: skip
    full = genlab.train(cfg, run_dir=tmp_path / "full")
    train_until_power_cut(cfg, tmp_path / "cut", 26)
    genlab.train(cfg, run_dir=tmp_path / "cut")
    for name in ("model.safetensors", "ema.safetensors"):
        a, b = load_file(full.run_dir / name), load_file(tmp_path / "cut" / name)
        assert any(k.startswith("R.") for k in a) and a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
