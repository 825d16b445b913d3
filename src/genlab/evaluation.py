"""`genlab eval`: a run's likelihood (exact) or bound on its test split, under genlab's one
convention (genlab.metrics.likelihood), written to eval.json with the conventions used."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from genlab.config import build_run_config
from genlab.data import iterate, load_dataset
from genlab.errors import CheckpointError
from genlab.train import checkpoint as ckpt
from genlab.train import rundir


@torch.no_grad()
def per_example_nll(
    model: Any, ds: Any, transform: Any, *, k: int, batch_size: int, limit: int | None, seed: int = 0, progress: bool = True
) -> torch.Tensor:
    """NLL (nats) of each test example: exact, or the bound with k importance samples."""
    from tqdm.auto import tqdm

    n = len(ds) if limit is None else min(limit, len(ds))
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bar = tqdm(total=n, unit="ex", disable=not progress, desc=f"nll k={k}", leave=False)
        for batch in iterate(ds, transform, batch_size, seed=seed, limit=n):
            x = batch["x"].to(model.device)
            y = batch["y"].to(model.device) if model.conditional else None
            out.append(model.nll(x, y, k=k).double().cpu())
            bar.update(len(x))
        bar.close()
    return torch.cat(out)


def evaluate_run(run_dir: Path, overrides: list[str] | dict | None = None, *, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    from genlab.api import load
    from genlab.metrics.likelihood import likelihood_report

    if not (run_dir / rundir.WEIGHTS).is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint ({rundir.WEIGHTS}); train it first with `genlab train`")
    model = load(run_dir, device=device)
    cfg = build_run_config(
        model.run_config,
        [f"eval.{k}" if not k.startswith("eval.") else k for k in (overrides or [])] if isinstance(overrides, list) else overrides,
    )
    ec = cfg.eval
    ds, transform = load_dataset(cfg.data, ec.split)
    result: dict[str, Any] = {"run": str(run_dir), "model": cfg.model.name, "family": model.family, "step": model.trained_steps}
    conventions: dict[str, Any] = {
        "split": ec.split,
        "n_examples": min(len(ds), ec.n_examples or len(ds)),
        "weights": "ema" if (run_dir / rundir.EMA_WEIGHTS).is_file() else "model",
    }
    if model.likelihood != "none":
        t0 = time.perf_counter()
        if model.likelihood == "bound" and getattr(model, "importance_weighted", False):
            elbo = per_example_nll(model, ds, transform, k=1, batch_size=ec.batch_size, limit=ec.n_examples, progress=progress)
            result["elbo"] = likelihood_report(elbo, model.spec, exact=False, bound_name="ELBO")
            nll = per_example_nll(
                model, ds, transform, k=ec.iwae_k, batch_size=max(1, ec.batch_size // 4), limit=ec.n_examples, progress=progress
            )
            bound = f"IWAE-{ec.iwae_k}"
        else:
            nll = per_example_nll(model, ds, transform, k=1, batch_size=ec.batch_size, limit=ec.n_examples, progress=progress)
            bound = model.bound_name or "bound"
        rep = likelihood_report(nll, model.spec, exact=model.likelihood == "exact", bound_name=bound)
        result.update(rep)
        conventions["likelihood"] = rep.get("convention")
        result["seconds_likelihood"] = round(time.perf_counter() - t0, 2)
    result["conventions"] = conventions
    ckpt.atomic_write_text(run_dir / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
