"""`genlab eval`: a model's likelihood (exact) or bound on its test split under genlab's one convention
(genlab.metrics.likelihood), and the quality of its samples as its data's modality measures it (FID and friends for
images, MMD and mode coverage for 2D points, ...), written to eval.json with every convention next to the numbers."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import checkpoint as ckpt
from genlab.config import RunConfig, build_run_config
from genlab.data import load_dataset
from genlab.errors import ConfigError, GenlabError
from genlab.metrics.likelihood import likelihood_report, per_example_nll
from genlab.modalities import modality_of
from genlab.models import GenerativeModel


def likelihood_metrics(model: GenerativeModel, cfg: RunConfig, ds: Any, transform: Any, progress: bool) -> dict[str, Any]:
    """Exact NLL, or the ELBO and the IWAE-k bound for importance-weighted models, in nats and bits/dim."""
    ec, out = cfg.eval, {}
    t0 = time.perf_counter()
    kw = {"batch_size": ec.batch_size, "limit": ec.n_examples, "seed": ec.seed, "progress": progress}
    if model.likelihood == "bound" and model.importance_weighted:
        elbo = per_example_nll(model, ds, transform, k=1, desc="ELBO", **kw)
        out["elbo"] = likelihood_report(elbo, model.spec, exact=False, bound_name="ELBO")
        kw["batch_size"] = max(1, ec.batch_size // 4)
        bound = f"IWAE-{ec.iwae_k}"
        nll = per_example_nll(model, ds, transform, k=ec.iwae_k, desc=f"{bound} bound", **kw)
    else:
        bound = model.bound_name or "bound"
        desc = "exact NLL" if model.likelihood == "exact" else f"{bound} bound"
        nll = per_example_nll(model, ds, transform, k=1, desc=desc, **kw)
    out.update(likelihood_report(nll, model.spec, exact=model.likelihood == "exact", bound_name=bound))
    out["seconds_likelihood"] = round(time.perf_counter() - t0, 2)
    return out


def evaluate_model(
    model: GenerativeModel,
    overrides: list[str] | dict | None = None,
    *,
    out_dir: Path | None = None,
    weights: str = "model",
    progress: bool = True,
    sample_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Likelihood and sample-quality metrics of a trained model (from `genlab.load` or `genlab.train(...).model`) on
    its run's test split; `overrides` change `eval.*` keys; `sample_kwargs` go to `model.sample` (a diffusion model's
    sampler and steps, a GAN's truncation, ...) and are written beside the numbers. With `out_dir`, the result is also
    written to out_dir/eval.json; `weights` names the weights evaluated ("ema" or "model")."""
    if model.run.config is None:
        raise ConfigError("this model has no run config (model.run.config is None): evaluate a model from genlab.train or genlab.load")
    if isinstance(overrides, list):
        overrides = [k if k.startswith("eval.") else f"eval.{k}" for k in overrides]
    cfg = build_run_config(model.run.config, overrides)
    ec = cfg.eval
    ds, transform = load_dataset(cfg.data, ec.split)
    result: dict[str, Any] = {"run": str(out_dir) if out_dir else None, "model": cfg.model.name, "family": model.family}
    result["step"] = model.run.steps
    conventions: dict[str, Any] = {"split": ec.split, "n_examples": min(len(ds), ec.n_examples or len(ds)), "weights": weights}
    if model.likelihood != "none":
        result.update(likelihood_metrics(model, cfg, ds, transform, progress))
        conventions["likelihood"] = result.get("convention")
    if ec.sample_metrics:
        try:
            with torch.random.fork_rng(devices=[]):
                quality, conv = modality_of(model.spec).sample_metrics(model, cfg, ds, sample_kwargs)
                if sample_kwargs:
                    conv["sampler"] = dict(sample_kwargs)
        except GenlabError as e:
            if cfg.eval.features is not None:
                raise
            warnings.warn(f"sample metrics skipped: {e}")
            quality, conv = {}, {"skipped": str(e)}
        result.update(quality)
        conventions["samples"] = conv
        if "true_nll" in result and "nll" in result:
            result["kl_gap"] = result["nll"] - result["true_nll"]
    result["conventions"] = conventions
    result = strict(_plain(result))
    if out_dir is not None:
        ckpt.atomic_write_text(Path(out_dir) / "eval.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


def strict(result: dict[str, Any]) -> dict[str, Any]:
    """Non-finite numbers (JSON has none) become null, and `conventions["not_finite"]` says what each one was."""
    bad: dict[str, str] = {}

    def clean(x: Any, path: str) -> Any:
        if isinstance(x, dict):
            return {k: clean(v, f"{path}.{k}" if path else k) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, float) and not math.isfinite(x):
            bad[path] = str(x)
            return None
        return x

    out = clean(result, "")
    if bad:
        out.setdefault("conventions", {})["not_finite"] = bad
    return out


def _plain(x: Any) -> Any:
    """numpy scalars -> Python numbers, for JSON."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
