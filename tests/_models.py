"""Tiny models and data registered for the tests only: a factorised Gaussian (exact, deterministic
loss: ideal for exact-resume and DDP checks) and a two-phase adversarial toy (the phases contract)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from genlab.config import DataConfig, ModelConfig, param
from genlab.data.base import ArrayDataset
from genlab.models.base import GenerativeModel, Phase
from genlab.registry import register_dataset, register_features, register_model
from genlab.spec import DataSpec


@register_dataset("test_images")
def _images(cfg: DataConfig, split: str) -> ArrayDataset:
    """512 (train) / 128 (test) random 8x8 grayscale images with 4 classes whose mean differs."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    n = 512 if split == "train" else 128
    y = torch.arange(n) % 4
    base = (y.float() * 50 + 30).view(n, 1, 1, 1)
    x = (base + 20 * torch.randn(n, 1, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
    return ArrayDataset(x, y, DataSpec((1, 8, 8), num_classes=4, class_names=("a", "b", "c", "d")), "test_images")


@dataclass
class GaussConfig(ModelConfig):
    name: str = "test_gaussian"
    conditional: bool = param(False, help="one mean per class")
    nan_after: int | None = param(None, help="return a NaN loss from this training call on (tests)")


@register_model("test_gaussian", GaussConfig)
class FactorisedGaussian(GenerativeModel):
    """p(x) = prod_d N(x_d; mu_d, sigma_d^2): exact log-likelihood, deterministic loss."""

    family = "test"
    likelihood = "exact"

    def __init__(self, config: GaussConfig, spec: DataSpec):
        super().__init__(config, spec)
        k = spec.num_classes if config.conditional and spec.num_classes else 1
        self.mu = nn.Parameter(0.1 * torch.randn(k, *spec.shape))
        self.log_sigma = nn.Parameter(torch.zeros(*spec.shape))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def _mu(self, y):
        return self.mu[y] if self.conditional else self.mu[0]

    def log_prob(self, x, y=None):
        z = (x - self._mu(y)) / self.log_sigma.exp()
        lp = -0.5 * z**2 - self.log_sigma - 0.5 * math.log(2 * math.pi)
        return lp.flatten(1).sum(1)

    def loss(self, batch, phase=None):
        if self.training:
            self.calls += 1
        lp = self.log_prob(batch["x"], batch.get("y"))
        loss = -lp.mean() / self.spec.dim
        if self.config.nan_after is not None and self.calls > self.config.nan_after:
            loss = loss * float("nan")
        return {"loss": loss, "nll": -lp.mean().detach()}

    def sample(self, n, *, labels=None, generator=None, **kw):
        if self.conditional and labels is None:
            raise ValueError("labels are required")
        eps = torch.randn((n, *self.spec.shape), generator=generator).to(self.mu.device)
        mu = self._mu(labels) if self.conditional else self.mu[0]
        return (mu + self.log_sigma.exp() * eps).clamp(-1, 1) if self.spec.is_image else mu + self.log_sigma.exp() * eps

    @classmethod
    def contract_cases(cls):
        return [({}, DataSpec((1, 8, 8))), ({"conditional": True}, DataSpec((2,), num_classes=3, encoding="continuous"))]


@dataclass
class TwoPhaseConfig(ModelConfig):
    name: str = "test_twophase"
    n_critic: int = param(2, ge=1)
    g_start: float = param(0.0, ge=0, le=1, help="fraction of the budget before the generator starts training")
    warn_above: float | None = param(None, help="diagnose() warns when the critic's loss exceeds this")


@register_model("test_twophase", TwoPhaseConfig)
class TinyAdversarial(GenerativeModel):
    """A linear generator against a small critic (least-squares GAN loss), two optimisers."""

    family = "test"
    likelihood = "none"

    def __init__(self, config: TwoPhaseConfig, spec: DataSpec):
        super().__init__(config, spec)
        d = spec.dim
        self.G = nn.Linear(4, d)
        self.D = nn.Sequential(nn.Linear(d, 16), nn.SiLU(), nn.Linear(16, 1))

    def phases(self):
        return [
            Phase("d", self.D.parameters(), steps=self.config.n_critic, lr_scale=2.0),
            Phase("g", self.G.parameters(), start_fraction=self.config.g_start),
        ]

    def diagnose(self, row):
        if self.config.warn_above is not None and row.get("d/loss", 0.0) > self.config.warn_above:
            return f"critic loss {row['d/loss']:.3g} above {self.config.warn_above}"
        return None

    def _fake(self, n, generator=None):
        z = torch.randn(n, 4, generator=generator).to(self.G.weight.device)
        return self.G(z).view(n, *self.spec.shape)

    def loss(self, batch, phase=None):
        x = batch["x"]
        if phase == "d":
            fake = self._fake(len(x)).detach()
            d_real, d_fake = self.D(x.flatten(1)), self.D(fake.flatten(1))
            loss = ((d_real - 1) ** 2).mean() + (d_fake**2).mean()
            return {"loss": loss, "d_real": d_real.mean().detach()}
        d_fake = self.D(self._fake(len(x)).flatten(1))
        return {"loss": ((d_fake - 1) ** 2).mean()}

    def sample(self, n, *, labels=None, generator=None, **kw):
        x = self._fake(n, generator)
        return x.tanh() if self.spec.is_image else x

    @classmethod
    def contract_cases(cls):
        return [({}, DataSpec((2,), encoding="continuous")), ({"n_critic": 1}, DataSpec((1, 4, 4)))]


class _TestFeatures(nn.Module):
    """A fixed feature network for the 8x8 test images: brightness statistics and a brightness classifier."""

    def features(self, x):
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, :, :4].mean((1, 2, 3)), x[:, :, 4:].mean((1, 2, 3))], 1)

    def classify(self, x):
        centres = torch.tensor([30.0, 80.0, 130.0, 180.0]) / 127.5 - 1
        return -((x.mean((1, 2, 3))[:, None] - centres) ** 2) * 100


@register_features("test_images", datasets=("test_images",))
def _test_features():
    return _TestFeatures()


def tiny_diffusion_run(path, **model):
    """A diffusion model trained 3 steps on the test images: enough for the apps' CLI paths."""
    import genlab

    cfg = {
        "data": {"name": "test_images", "dequantize": False},
        "model": {"name": "diffusion", "channels": [8, 8], "attn_resolutions": [4], "heads": 2, "timesteps": 20, "steps": 4, **model},
        "train": {"batch_size": 16, "max_steps": 3, "progress": False, "warmup_steps": 0, "n_samples": 4},
        "eval": {"n_samples": 8},
    }
    return genlab.train(cfg, run_dir=path, resume="never").run_dir


def train_until_power_cut(cfg: dict, run_dir, step: int) -> None:
    """Train `cfg` into `run_dir` and die (RuntimeError "power cut") right after the checkpoint written at `step`."""
    import pytest

    from genlab.config import build_run_config
    from genlab.train.trainer import Trainer

    t = Trainer(build_run_config(cfg), run_dir)
    save = t.save

    def save_then_die():
        save()
        if t.step == step:
            raise RuntimeError("power cut")  # the process dies right after this checkpoint

    t.save = save_then_die
    with pytest.raises(RuntimeError, match="power cut"):
        t.fit()
