"""What the diffusion apps share: the run's model and test examples, and the skeleton of their subcommands."""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from genlab.data import iterate, load_dataset
from genlab.errors import ConfigError
from genlab.models.loading import as_model


def load_examples(model: Any, n: int, *, split: str = "test", offset: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first `n` examples (from `offset`) of a run's split, in the model's space (images in [-1, 1]), and their labels."""
    if model.run.config is None:
        raise ConfigError("the model has no run config (model.run.config is None): use a model from genlab.train or genlab.load")
    ds, transform = load_dataset(model.run.config.data, split)
    if n < 1 or offset + n > len(ds):
        raise ConfigError(f"--n {n}: expected between 1 and {len(ds) - offset} examples of the {split} split")
    batch = next(iterate(ds, transform, offset + n, limit=offset + n))
    y = batch.get("y")
    return batch["x"][offset:].to(model.device), None if y is None else y[offset:].to(model.device)


def diffusion_model(run: str | os.PathLike | Any, device: str = "cpu") -> Any:
    """A loaded diffusion model from a run directory (or the model itself), or a ConfigError for another family."""
    model = as_model(run, device)
    if getattr(model, "family", "") != "diffusion":
        raise ConfigError(f"{run}: this app needs a diffusion model, got a {getattr(model, 'family', '?')!r} model")
    return model


def add_app_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    epilog: str,
    run_help: str,
    n: int | None,
    n_help: str,
    out: str | None,
    out_help: str,
    steps: int | None,
    sampler: str | None = None,
    sampler_help: str | None = None,
) -> argparse.ArgumentParser:
    """`genlab <name> RUN [--n N] [--out FILE] [--sampler S] [--steps K] [--seed S] [--device D]`; the app adds its own flags."""
    p = subparsers.add_parser(name, help=help, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help=run_help)
    if n is not None:
        p.add_argument("--n", type=int, default=n, help=n_help)
    p.add_argument("--out", default=out, help=out_help)
    if sampler_help is not None:
        p.add_argument("--sampler", default=sampler, help=sampler_help)
    p.add_argument("--steps", type=int, default=steps, help=f"function evaluations / grid steps (default: {steps or 'the model’s own'})")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    return p
