"""Rebuild a trained model from its run directory: the resolved config, the weights and the data spec in their header."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from genlab import checkpoint as ckpt
from genlab.errors import CheckpointError, ConfigError
from genlab.models import GenerativeModel, build_model
from genlab.spec import DataSpec


def load_run(run_dir: str | os.PathLike, *, ema: bool = True, device: str | torch.device = "cpu") -> GenerativeModel:
    """The model of a run directory (the EMA weights when present), in eval mode, with its RunContext (config,
    steps trained) set as `genlab.train` sets it.

    >>> model = load_run("runs/vae_fmnist")   # doctest: +SKIP
    """
    device = check_device(device)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    cfg = ckpt.read_run_config(run_dir)
    path = run_dir / (ckpt.EMA_WEIGHTS if ema and (run_dir / ckpt.EMA_WEIGHTS).is_file() else ckpt.WEIGHTS)
    meta = ckpt.read_metadata(path)
    if meta.get("model") != cfg.model.name:
        raise CheckpointError(f"{path} holds a {meta.get('model')!r} model but {run_dir / ckpt.CONFIG} names {cfg.model.name!r}")
    if "spec" not in meta:
        raise CheckpointError(f"{path} lacks the data spec in its header; it was not written by genlab's trainer")
    try:
        spec = DataSpec.from_dict(json.loads(meta["spec"]))
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{path}: the data spec in its header is not readable ({type(e).__name__}: {e}); the file is damaged"
        ) from None
    model = build_model(cfg.model, spec, cfg, int(meta.get("step", 0)))
    ckpt.load_weights(path, model)
    check_sibling(run_dir, path, meta)
    return model.to(device).eval()


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device that exists here, or a ConfigError saying what to pass."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available here; use cpu")
    return dev


def check_sibling(run_dir: Path, read: Path, meta: dict[str, str]) -> None:
    """Warn when the weights file that was not read (model or EMA) is damaged or from another step than the one read:
    a checkpoint is being written right now, or a run was cut while writing one (resuming it repairs both from state.pt)."""
    for name in (ckpt.WEIGHTS, ckpt.EMA_WEIGHTS):
        other = run_dir / name
        if other == read or not other.is_file():
            continue
        try:
            other_meta = ckpt.read_metadata(other)
        except CheckpointError as e:
            warnings.warn(f"{other} is damaged ({e}); the model comes from {read.name} (resuming the run rewrites it)")
            continue
        if other_meta.get("step") != meta.get("step"):
            step, mine = other_meta.get("step"), meta.get("step")
            warnings.warn(f"{other} is at step {step}, {read.name} at step {mine}: a checkpoint is being written or was cut")


def as_model(model_or_run: GenerativeModel | str | os.PathLike, device: str | torch.device = "cpu") -> GenerativeModel:
    """A model as it is, or the model of a run directory."""
    return model_or_run if isinstance(model_or_run, GenerativeModel) else load_run(model_or_run, device=device)
