"""Describing run directories: model, data, step, parameters and the last logged metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genlab.models.loading import load_run
from genlab.train import rundir
from genlab.train.curves import read_metrics


def run_info(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What a run is: model, data, step, parameters, training time, last logged metrics."""
    run_dir = Path(run_dir)
    cfg = rundir.read_run_config(run_dir)
    out: dict[str, Any] = {"run_dir": str(run_dir), "model": cfg.model.name, "data": cfg.data.name}
    if (run_dir / rundir.WEIGHTS).is_file():
        model = load_run(run_dir)
        out["step"] = model.run.steps
        out["family"] = model.family
        out["modality"] = model.spec.modality
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
