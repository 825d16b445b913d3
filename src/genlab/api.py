"""The public Python API; the CLI is a thin layer over these functions.

import genlab
result = genlab.train("configs/vae/vae_fmnist.toml", ["train.max_time=120"])
model = genlab.load(result.run_dir)
x = model.sample(16, generator=torch.Generator().manual_seed(0))   # (16, 1, 28, 28) in [-1, 1]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from genlab import registry
from genlab.config import RunConfig, build_run_config
from genlab.errors import CheckpointError, ConfigError
from genlab.models import GenerativeModel, build_model
from genlab.spec import DataSpec
from genlab.train import checkpoint as ckpt
from genlab.train import rundir


def train(
    config: str | os.PathLike | dict | RunConfig,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    resume: Literal["auto", "always", "never"] = "auto",
) -> Any:
    """Train a model from a preset path, a dict or a RunConfig, with `section.key=value` overrides.

    The run goes to `run_dir` (default `runs/<preset name>`); a matching run there is resumed.
    Returns a TrainResult (run_dir, step, elapsed, status, model).
    """
    from genlab.train.trainer import train as _train

    cfg = build_run_config(config, overrides)
    if run_dir is None:
        run_dir = rundir.default_run_dir(config if isinstance(config, (str, os.PathLike)) else None, cfg)
    return _train(cfg, run_dir, resume=resume)


def load(run_dir: str | os.PathLike, *, ema: bool = True, device: str | torch.device = "cpu") -> GenerativeModel:
    """Rebuild a trained model from its run directory (config + weights; the EMA weights when present)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    cfg = rundir.read_run_config(run_dir)
    path = run_dir / (rundir.EMA_WEIGHTS if ema and (run_dir / rundir.EMA_WEIGHTS).is_file() else rundir.WEIGHTS)
    meta = ckpt.read_metadata(path)
    if meta.get("model") != cfg.model.name:
        raise CheckpointError(f"{path} holds a {meta.get('model')!r} model but {run_dir / rundir.CONFIG} names {cfg.model.name!r}")
    if "spec" not in meta:
        raise CheckpointError(f"{path} lacks the data spec in its header; it was not written by genlab's trainer")
    spec = DataSpec.from_dict(json.loads(meta["spec"]))
    model = build_model(cfg.model, spec)
    ckpt.load_weights(path, model)
    model.run_config = cfg
    model.trained_steps = int(meta.get("step", 0))
    return model.to(device).eval()


def _as_model(model_or_run: GenerativeModel | str | os.PathLike, device: str | torch.device = "cpu") -> GenerativeModel:
    return model_or_run if isinstance(model_or_run, GenerativeModel) else load(model_or_run, device=device)


@torch.no_grad()
def sample(
    model_or_run: GenerativeModel | str | os.PathLike,
    n: int,
    *,
    seed: int = 0,
    labels: torch.Tensor | list[int] | None = None,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    **sampler_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`n` samples (in data space) and their labels, in batches, reproducible under `seed`.

    Class-conditional models get balanced labels 0..K-1 unless `labels` are given.
    """
    model = _as_model(model_or_run, device)
    if n < 1:
        raise ConfigError(f"n: expected a positive number of samples, got {n}")
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.numel() == 1:
            labels = labels.expand(n).clone()
        if len(labels) != n:
            raise ConfigError(f"labels: expected {n} labels (or one), got {len(labels)}")
        if model.spec.num_classes and (labels.min() < 0 or labels.max() >= model.spec.num_classes):
            raise ConfigError(f"labels: expected values in 0..{model.spec.num_classes - 1}")
    elif model.conditional:
        labels = torch.arange(n) % model.spec.num_classes
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        lab = None if labels is None else labels[start : start + batch_size].to(model.device)
        out.append(model.sample(min(batch_size, n - start), labels=lab, generator=g, **sampler_kwargs).cpu())
    return torch.cat(out), labels


def save_samples_file(x: torch.Tensor, labels: torch.Tensor | None, out: str | os.PathLike, spec: DataSpec) -> Path:
    """Write samples as .png (grid or scatter) or .npz (`images` uint8 N x C x H x W, `labels`)."""
    from genlab.data.transforms import from_unit_range
    from genlab.report.grid import save_samples

    out = Path(out)
    if out.suffix == ".png" or (out.suffix == ".txt" and spec.encoding == "tokens"):  # token sequences are written as text
        nrow = spec.num_classes if labels is not None and 0 < spec.num_classes <= 16 else None
        return save_samples(x, out, nrow=nrow, vocab=spec.vocab)
    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        if spec.is_image:
            arrays["images"] = from_unit_range(x).numpy()
        else:
            arrays["samples"] = x.float().numpy()
        if labels is not None:
            arrays["labels"] = labels.numpy()
        np.savez_compressed(out, **arrays)
        return out
    raise ConfigError(f"--out {out}: expected a .png or .npz file name (or .txt for token sequences)")


def evaluate(
    run_dir: str | os.PathLike, overrides: list[str] | dict[str, Any] | None = None, *, device: str = "cpu", **sampler_kwargs: Any
) -> dict[str, Any]:
    """Evaluate a run on its test split and write eval.json; returns the numbers.

    `sampler_kwargs` go to the model's `sample` for the sample-quality metrics, e.g.
    `evaluate(run, sampler="heun", steps=18)` for a diffusion model or `truncation=0.7` for a GAN."""
    from genlab.evaluation import evaluate_run

    return evaluate_run(Path(run_dir), overrides, device=device, sample_kwargs=sampler_kwargs)


def info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What a run is: model, data, step, parameters, training time, last logged metrics."""
    from genlab.report.plots import read_metrics

    run_dir = Path(run_dir)
    cfg = rundir.read_run_config(run_dir)
    out: dict[str, Any] = {"run_dir": str(run_dir), "model": cfg.model.name, "data": cfg.data.name}
    if (run_dir / rundir.WEIGHTS).is_file():
        meta = ckpt.read_metadata(run_dir / rundir.WEIGHTS)
        out["step"] = int(meta["step"])
        model = load(run_dir)
        out["family"] = model.family
        out["parameters"] = sum(p.numel() for p in model.parameters())
    else:
        out["step"] = 0
    rows = [r for r in read_metrics(run_dir / rundir.METRICS) if "loss" in r or any(k.endswith("loss") for k in r)]
    if rows:
        out["training_seconds"] = rows[-1].get("time")
        out["last"] = rows[-1]
    if (run_dir / "interrupted").is_file():
        out["status"] = "interrupted"
    out["config"] = cfg.to_dict()
    return out


def list_models() -> list[str]:
    return registry.list_models()


def list_datasets() -> list[str]:
    return registry.list_datasets()


def list_samplers() -> list[str]:
    return registry.list_samplers()
