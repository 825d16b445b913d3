"""Data augmentation with a class-conditional model: one fixed classifier trained on a small real subset, that subset plus
labelled samples, and samples only (train on synthetic, test on real: the Classification Accuracy Score of Ravuri & Vinyals
2019, "Classification Accuracy Score for Conditional Generative Models"), each tested on the full real test split."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genlab import checkpoint as ckpt
from genlab.data import load_dataset
from genlab.data.transforms import from_unit_range, pad_to, to_unit_range
from genlab.errors import ConfigError, DataError
from genlab.modalities import modality_of
from genlab.models import GenerativeModel
from genlab.models.loading import as_model
from genlab.models.sampling import sample_seeded
from genlab.nn.convnets import ConvEncoder
from genlab.nn.mlp import MLP
from genlab.spec import DataSpec

SETTINGS = ("real", "real+synthetic", "synthetic")
RESULT_FILE = "augment.json"

# The fixed recipe: the same network, optimiser, budget and seed in every setting, so only the training data differ.
DEFAULT_STEPS = 1000
BATCH_SIZE = 64
LR = 2e-3
WEIGHT_DECAY = 1e-2
CNN_CHANNELS = (32, 64)  # two stride-2 convs: 28 -> 14 -> 7
MLP_HIDDEN = (128, 128)
SYNTHETIC_PER_REAL = 10  # default number of samples per real training example


def build_classifier(spec: DataSpec) -> nn.Module:
    """The fixed classifier for data of `spec`: a compact CNN for images, an MLP for vectors; (B, *shape) -> (B, K) logits.

    >>> build_classifier(DataSpec((1, 28, 28), num_classes=10))(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """
    if not spec.is_image:
        return MLP(spec.dim, spec.num_classes, hidden=MLP_HIDDEN)
    c, h, w = spec.shape
    if h % 2 or w % 2:
        raise ConfigError(f"augment: the classifier halves the image size; {h}x{w} images are odd-sized (pad them with data.pad_to)")
    levels = 2 if h % 4 == 0 and w % 4 == 0 else 1
    return ConvEncoder(c, (h, w), CNN_CHANNELS[:levels], spec.num_classes, blocks=0)


def balanced_subset(y: torch.Tensor, per_class: int, num_classes: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of `per_class` examples of each class 0..K-1, drawn without replacement under `seed`, in class order.

    >>> balanced_subset(torch.tensor([0, 1, 0, 1, 1]), 1, 2, seed=0).shape
    torch.Size([2])
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(num_classes):
        members = (y == k).nonzero().flatten()
        if len(members) < per_class:
            raise ConfigError(
                f"augment: a class-balanced real subset needs {per_class} examples of each class but class {k} has {len(members)}; "
                "lower --fraction"
            )
        out.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(out)


def classifier_inputs(x: torch.Tensor, spec: DataSpec) -> torch.Tensor:
    """Stored examples (uint8 images, float vectors) -> classifier inputs in the model's space: images in [-1, 1],
    padded with -1 to the model's size when it was trained with data.pad_to."""
    if x.dtype != torch.uint8:
        return x.float()
    x = to_unit_range(x)
    return x if x.shape[-1] == spec.shape[-1] else pad_to(x, spec.shape[-1])


def train_classifier(x: torch.Tensor, y: torch.Tensor, spec: DataSpec, *, steps: int, seed: int, device: str = "cpu") -> nn.Module:
    """The fixed classifier trained on inputs `x` (N, *spec.shape) with labels `y`: AdamW with a cosine-decayed lr,
    `steps` batches of BATCH_SIZE drawn with replacement; weights and batches depend only on `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_classifier(spec)
    net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (BATCH_SIZE,), generator=g)
        loss = F.cross_entropy(net(x[idx].to(device)), y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: DataSpec, *, batch_size: int = 1000) -> float:
    """Fraction of stored examples `x` (uint8 images or float vectors) that `net` labels `y`."""
    device = next(net.parameters()).device
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = net(classifier_inputs(x[start : start + batch_size], spec).to(device))
        correct += int((logits.argmax(1).cpu() == y[start : start + batch_size]).sum())
    return correct / len(x)


def augment(
    run: str | os.PathLike | GenerativeModel,
    *,
    real_fraction: float = 0.01,
    n_synthetic: int | None = None,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    out: str | os.PathLike | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Test accuracy of the fixed classifier trained on real, real + synthetic and synthetic data, for a run directory
    (which gets augment.json) or a trained model (from `genlab.train(...).model` or `genlab.load`).

    The real subset is `real_fraction` of the run's training split, class-balanced and drawn under `seed`; the synthetic
    set is `n_synthetic` samples of the run's class-conditional model (default: 10x the real subset) with balanced labels,
    stored as the .npz export stores them (uint8 images) and exported to `out` (FILE.npz) when given. Every setting is
    tested on the full test split. Returns {"real": {"accuracy", "n_real", "n_synthetic", "seconds"}, "real+synthetic":
    ..., "synthetic": ..., plus the run, counts and recipe}.

    >>> res = augment("runs/cvae_fmnist", out="synthetic.npz")  # doctest: +SKIP
    >>> res["real"]["accuracy"], res["real+synthetic"]["accuracy"], res["synthetic"]["accuracy"]  # doctest: +SKIP
    """
    if not 0 < real_fraction <= 1:
        raise ConfigError(f"--fraction: expected a fraction of the training split in (0, 1], got {real_fraction}")
    if n_synthetic is not None and n_synthetic < 1:
        raise ConfigError(f"--n-synthetic: expected a positive number of samples, got {n_synthetic}")
    if steps < 1:
        raise ConfigError(f"--steps: expected a positive number of classifier steps, got {steps}")
    if out is not None and Path(out).suffix != ".npz":
        raise ConfigError(f"--out {out}: the labelled synthetic data are exported as a .npz file")
    run_dir = None if isinstance(run, GenerativeModel) else Path(run)
    model = as_model(run, device)
    cfg = model.run.config
    if cfg is None:
        raise ConfigError("augment: the model has no run config (model.run.config is None); pass a run directory or a trained model")
    if not model.conditional:
        raise ConfigError(
            f"augment: {run_dir or 'the model'} holds an unconditional {cfg.model.name!r} model, but augmentation needs labelled "
            "samples; train a class-conditional one (model.conditional=true on labelled data, e.g. configs/vae/cvae_fmnist.toml)"
        )
    spec, num_classes = model.spec, model.spec.num_classes
    data_cfg = cfg.data
    train_ds, _ = load_dataset(data_cfg, "train")
    test_ds, _ = load_dataset(dataclasses.replace(data_cfg, n_test=None), "test")
    if len(test_ds) == 0:
        raise DataError(f"augment: the test split of {data_cfg.name} is empty; accuracy needs real test examples")

    per_class = max(1, round(real_fraction * len(train_ds) / num_classes))
    real = balanced_subset(train_ds.y, per_class, num_classes, seed=seed)
    x_real, y_real = classifier_inputs(train_ds.x[real], spec), train_ds.y[real]
    n_synthetic = n_synthetic or SYNTHETIC_PER_REAL * len(real)

    t0 = time.perf_counter()
    samples, labels = sample_seeded(model, n_synthetic, seed=seed)
    seconds_sampling = time.perf_counter() - t0
    stored = from_unit_range(samples) if spec.is_image else samples.float()  # what the .npz sample file holds
    if out is not None:
        out = modality_of(spec).write(samples, labels, out, spec)
    x_syn = classifier_inputs(stored, spec)

    result: dict[str, Any] = {
        "run": None if run_dir is None else str(run_dir),
        "model": cfg.model.name,
        "step": model.run.steps,
        "data": data_cfg.name,
        "real_fraction": real_fraction,
        "n_test": len(test_ds),
        "seconds_sampling": round(seconds_sampling, 2),
    }
    train_sets = {
        "real": (x_real, y_real, len(real), 0),
        "real+synthetic": (torch.cat([x_real, x_syn]), torch.cat([y_real, labels]), len(real), n_synthetic),
        "synthetic": (x_syn, labels, 0, n_synthetic),
    }
    for name, (x, y, n_real, n_syn) in train_sets.items():
        t0 = time.perf_counter()
        net = train_classifier(x, y, spec, steps=steps, seed=seed, device=device)
        acc = accuracy(net, test_ds.x, test_ds.y, spec)
        result[name] = {"accuracy": acc, "n_real": n_real, "n_synthetic": n_syn, "seconds": round(time.perf_counter() - t0, 2)}
    result["classifier"] = {
        "net": "cnn" if spec.is_image else "mlp",
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "optimizer": "AdamW",
        "lr": LR,
        "weight_decay": WEIGHT_DECAY,
        "schedule": "cosine",
        "seed": seed,
    }
    result["export"] = None if out is None else str(out)
    if run_dir is not None:
        ckpt.atomic_write_text(run_dir / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result


def format_table(result: dict[str, Any]) -> str:
    """The three settings as a small text table: training examples (real, synthetic) and test accuracy."""
    lines = [f"{'trained on':<16}{'real':>8}{'synthetic':>11}{'test acc':>10}"]
    for name in SETTINGS:
        r = result[name]
        lines.append(f"{name:<16}{r['n_real']:>8}{r['n_synthetic']:>11}{r['accuracy']:>10.2%}")
    return "\n".join(lines)


def _cmd_augment(a: argparse.Namespace) -> int:
    result = augment(a.run, real_fraction=a.fraction, n_synthetic=a.n_synthetic, seed=a.seed, steps=a.steps, out=a.out, device=a.device)
    print(format_table(result))
    print(f"test split: {result['n_test']} real examples -> {Path(a.run) / RESULT_FILE}")
    if result["export"]:
        print(f"labelled synthetic data -> {result['export']}")
    return 0


EPILOG = f"""examples:
  genlab augment runs/cvae_fmnist                                  # 1% of the training split, 10x as many samples
  genlab augment runs/cvae_fmnist --fraction 0.05 --n-synthetic 20000 --out synthetic.npz
The classifier (a compact CNN for images, an MLP for vectors; AdamW, batch {BATCH_SIZE}, cosine lr) is the same in every
setting; only its training data differ. "synthetic" is train-on-synthetic-test-on-real (Ravuri & Vinyals 2019)."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab augment RUN [--fraction F] [--n-synthetic N] [--steps S] [--seed S] [--out FILE.npz] [--device D]`."""
    p = subparsers.add_parser(
        "augment",
        help="score a class-conditional run as data augmentation for a classifier",
        description="Train a fixed classifier on a small real subset, on that subset + the run's labelled samples, and on "
        f"samples only; report each one's accuracy on the real test split -> RUN/{RESULT_FILE}.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory of a class-conditional model")
    p.add_argument("--fraction", type=float, default=0.01, help="real subset: share of the training split, class-balanced (default 0.01)")
    p.add_argument("--n-synthetic", type=int, default=None, help="samples drawn, balanced over classes (default: 10x the real subset)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"classifier training steps in each setting (default {DEFAULT_STEPS})")
    p.add_argument("--seed", type=int, default=0, help="seed for the real subset, the samples and the classifier (default 0)")
    p.add_argument("--out", default=None, help="also export the labelled samples as FILE.npz (uint8 'images' N x C x H x W, 'labels')")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.set_defaults(fn=_cmd_augment)
    return p
