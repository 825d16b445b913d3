"""The public Python API; the CLI is a thin layer over these functions.

import genlab
result = genlab.train("configs/vae/vae_fmnist.toml", ["train.max_time=120"])
model = genlab.load(result.run_dir)
x = model.sample(16, generator=torch.Generator().manual_seed(0))   # (16, 1, 28, 28) in [-1, 1]
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import torch

from genlab import registry
from genlab.apps.export import HUB_PREFIX, pull
from genlab.apps.optimize import OptimizeResult, optimize  # noqa: F401  (re-exported: genlab.optimize)
from genlab.config import RunConfig, build_run_config
from genlab.errors import CheckpointError
from genlab.evaluation import evaluate_model
from genlab.modalities import modality_of
from genlab.models import GenerativeModel
from genlab.models.loading import load_run
from genlab.models.sampling import sample_seeded
from genlab.train import rundir
from genlab.train.runs import run_info
from genlab.train.trainer import TrainResult
from genlab.train.trainer import train as train_run


def train(
    config: str | os.PathLike | dict | RunConfig,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    resume: Literal["auto", "always", "never"] = "auto",
) -> TrainResult:
    """Train a model from a preset path, a dict or a RunConfig, with `section.key=value` overrides.

    The run goes to `run_dir` (default `runs/<preset name>`); a matching run there is resumed.
    Returns a TrainResult (run_dir, step, elapsed, status, model).
    """
    cfg = build_run_config(config, overrides)
    if run_dir is None:
        run_dir = rundir.default_run_dir(config if isinstance(config, (str, os.PathLike)) else None, cfg)
    return train_run(cfg, run_dir, resume=resume)


def load(run_dir: str | os.PathLike, *, ema: bool = True, device: str | torch.device = "cpu") -> GenerativeModel:
    """Rebuild a trained model from its run directory or an exported model folder (config + weights; the EMA weights
    when present), or from the Hugging Face Hub as "hf:OWNER/NAME" (see `genlab export`)."""
    if str(run_dir).startswith(HUB_PREFIX):
        run_dir = pull(str(run_dir)[len(HUB_PREFIX) :])
    return load_run(run_dir, ema=ema, device=device)


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
    model = model_or_run if isinstance(model_or_run, GenerativeModel) else load(model_or_run, device=device)
    return sample_seeded(model, n, seed=seed, labels=labels, batch_size=batch_size, **sampler_kwargs)


def save_samples(x: torch.Tensor, labels: torch.Tensor | None, out: str | os.PathLike, model: GenerativeModel) -> Path:
    """Write samples in a format of the model's modality (.png grid or .npz for images, .txt for tokens, ...)."""
    return modality_of(model.spec).write(x, labels, out, model.spec)


def evaluate(
    model_or_run: GenerativeModel | str | os.PathLike,
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    device: str = "cpu",
    **sampler_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate a run (or a trained model) on its test split; a run directory gets eval.json. Returns the numbers.

    `sampler_kwargs` go to the model's `sample` for the sample-quality metrics, e.g.
    `evaluate(run, sampler="heun", steps=18)` for a diffusion model or `truncation=0.7` for a GAN."""
    if isinstance(model_or_run, GenerativeModel):
        return evaluate_model(model_or_run, overrides, sample_kwargs=sampler_kwargs)
    run_dir = Path(model_or_run)
    if not (run_dir / rundir.WEIGHTS).is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint ({rundir.WEIGHTS}); train it first with `genlab train`")
    model = load_run(run_dir, device=device)
    weights = "ema" if (run_dir / rundir.EMA_WEIGHTS).is_file() else "model"
    out_dir: Path | None = run_dir
    try:  # a read-only run is still evaluated: say so before the time is spent, not when eval.json cannot be written
        rundir.check_writable(run_dir)
    except CheckpointError:
        warnings.warn(f"{run_dir} is not writable: eval.json will not be written there; the numbers are returned (and printed)")
        out_dir = None
    result = evaluate_model(model, overrides, out_dir=out_dir, weights=weights, sample_kwargs=sampler_kwargs)
    return {**result, "run": str(run_dir), "eval_json": str(run_dir / "eval.json") if out_dir else None}


def info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What a run is: model, data, step, parameters, training time, last logged metrics."""
    return run_info(run_dir)


def list_models() -> list[str]:
    return registry.list_models()


def list_datasets() -> list[str]:
    return registry.list_datasets()


def list_samplers() -> list[str]:
    return registry.list_samplers()
