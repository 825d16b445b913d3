"""Run directories: create, resume or refuse — never silently overwrite what a user made."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from genlab.config import RunConfig, build_run_config, load_toml
from genlab.errors import CheckpointError

CONFIG, WEIGHTS, EMA_WEIGHTS, STATE, METRICS, SAMPLES = (
    "config.toml",
    "model.safetensors",
    "ema.safetensors",
    "state.pt",
    "metrics.jsonl",
    "samples",
)
GENLAB_FILES = {
    CONFIG,
    WEIGHTS,
    EMA_WEIGHTS,
    STATE,
    METRICS,
    SAMPLES,
    "loss.png",
    "eval.json",
    "report.html",
    "report.md",
    "interrupted",
    "augment.json",
}
# Keys that may change when a run is resumed: budgets and how it runs, not what it learns.
RESUMABLE_CHANGES = {
    "train.max_steps",
    "train.max_time",
    "train.progress",
    "train.num_threads",
    "train.device",
    "train.sample_every",
    "train.eval_every",
    "train.log_every",
    "train.ckpt_every",
    "train.ckpt_every_time",
    "eval",
}


def default_run_dir(config_path: str | os.PathLike | None, cfg: RunConfig) -> Path:
    stem = Path(config_path).stem if config_path else f"{cfg.model.name}_{cfg.data.name}"
    return Path("runs") / stem


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(old: RunConfig, new: RunConfig) -> list[str]:
    """Keys whose values differ between two configs, ignoring those a resume may change."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k in RESUMABLE_CHANGES or k.split(".")[0] in RESUMABLE_CHANGES:
            continue
        if a.get(k) != b.get(k):
            diffs.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
    return diffs


def read_run_config(run_dir: str | os.PathLike) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a genlab run directory (no {CONFIG}); train one with `genlab train CONFIG --run {run_dir}`"
        )
    return build_run_config(load_toml(path))


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / STATE).is_file() and (run_dir / WEIGHTS).is_file()


def prepare(run_dir: str | os.PathLike, cfg: RunConfig, resume: Literal["auto", "always", "never"] = "auto") -> bool:
    """Check `run_dir` against `cfg`; True when the run resumes from its checkpoint.

    A new or empty directory starts a run. A run with a checkpoint and the same config (budgets
    may change) resumes unless `resume="never"`. Anything else is refused with a message saying why.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists() or not any(run_dir.iterdir()):
        if resume == "always":
            raise CheckpointError(f"cannot resume {run_dir}: it does not exist or is empty")
        return False
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} exists and is not a directory")
    foreign = sorted(p.name for p in run_dir.iterdir() if p.name not in GENLAB_FILES and not p.name.startswith("."))
    if not (run_dir / CONFIG).is_file():
        raise CheckpointError(f"{run_dir} exists and is not a genlab run (holds {foreign[:5]}); choose another --run directory")
    if resume == "never":
        raise CheckpointError(f"run directory {run_dir} already exists; resume it (drop --fresh) or choose another --run directory")
    old = read_run_config(run_dir)
    diffs = config_differences(old, cfg)
    if diffs:
        raise CheckpointError(
            f"run directory {run_dir} holds a run with a different config ({'; '.join(diffs[:6])}); "
            "resume it with the same config or choose another --run directory"
        )
    if not has_checkpoint(run_dir):
        if resume == "always":
            raise CheckpointError(f"cannot resume {run_dir}: it has no checkpoint yet ({STATE} / {WEIGHTS} missing)")
        return False  # same config, never checkpointed: start again in place
    return True
