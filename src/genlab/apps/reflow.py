"""`genlab reflow RUN`: rectified flow's reflow (Liu et al. 2023) — draw (noise, sample) pairs from a trained flow-matching run
with its ODE sampler, then fine-tune the flow on those pairs; the k-rectified flow's paths are straighter, so fewer steps do."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import checkpoint as ckpt
from genlab.config import build_run_config, load_toml, to_dict
from genlab.errors import ConfigError
from genlab.metrics.straightness import flow_straightness
from genlab.models.distributions import randn
from genlab.models.loading import load_run
from genlab.train.trainer import TrainResult, train


@torch.no_grad()
def make_pairs(
    model: Any, n: int, *, steps: int = 20, sampler: str = "ddim", seed: int = 0, batch_size: int = 500, progress: bool = False
) -> dict[str, np.ndarray]:
    """`n` seeded pairs of a flow-matching model: noise (N, *shape) float32, x = the sampler's image of that noise, and y
    (balanced labels) for a class-conditional model."""
    if not hasattr(model, "decode"):
        raise ConfigError(
            f"reflow: the run holds a {type(model).__name__}; reflow needs a flow-matching run (model.name = 'flow_matching')"
        )
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    like = next(model.parameters())
    out: dict[str, list[np.ndarray]] = {"noise": [], "x": [], "y": []}
    for start in tqdm(range(0, n, batch_size), disable=not progress, desc="pairs", unit="batch", leave=False):
        m = min(batch_size, n - start)
        noise = randn((m, *model.spec.shape), like, g)
        y = (torch.arange(start, start + m) % model.spec.num_classes).to(like.device) if model.conditional else None
        x = model.decode(noise, labels=y, sampler=sampler, steps=steps, generator=g)
        out["noise"].append(noise.float().cpu().numpy())
        out["x"].append(x.float().cpu().numpy())
        if y is not None:
            out["y"].append(y.cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items() if v}


def write_pairs(pairs: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """The pairs as an .npz (noise, x[, y]), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **pairs)
    os.replace(tmp, path)
    return path


def reflow(
    run: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    n_pairs: int = 10000,
    steps: int = 20,
    sampler: str = "ddim",
    config: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    budget: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TrainResult:
    """Draw `n_pairs` pairs from the flow-matching run `run` (`sampler`, `steps`) into <out>_pairs.npz, then train the
    2-rectified flow into `out` (default <run>_reflow), starting from `run`'s weights: `config` (e.g. configs/fast/rf2_fmnist.toml)
    or the run's own config, with model.pairs and model.init_from set. `budget` seconds cover both: training gets what the
    pairs left of it. Pairs already written there are reused.

    >>> res = reflow("runs/fm_fmnist", n_pairs=10000, config="configs/fast/rf2_fmnist.toml")   # doctest: +SKIP
    """
    t0 = time.perf_counter()
    run = Path(run).resolve()
    out = Path(out) if out is not None else run.with_name(run.name + "_reflow")
    pairs_path = out.with_name(out.name + "_pairs.npz")
    raw = load_toml(config) if config is not None else to_dict(ckpt.read_run_config(run))
    if raw.get("model", {}).get("name", "flow_matching") != "flow_matching":
        raise ConfigError(f"reflow: the config names model {raw['model']['name']!r}; reflow trains a flow_matching model")
    if not pairs_path.is_file():
        teacher = load_run(run)
        write_pairs(make_pairs(teacher, n_pairs, steps=steps, sampler=sampler, seed=seed, progress=progress), pairs_path)
    raw.setdefault("model", {}).update({"name": "flow_matching", "pairs": str(pairs_path.resolve()), "init_from": str(run)})
    over = list(overrides or [])
    if budget is not None:
        left = budget - (time.perf_counter() - t0)
        if left <= 0:
            raise ConfigError(f"reflow: making {n_pairs} pairs took the whole budget of {budget:.0f} s; give fewer pairs or more time")
        over.append(f"train.max_time={left:.1f}")
    return train(build_run_config(raw, over), out)


def _cmd(a: argparse.Namespace) -> int:
    res = reflow(
        a.run,
        out=a.out,
        n_pairs=a.pairs,
        steps=a.pair_steps,
        sampler=a.sampler,
        config=a.config,
        overrides=a.overrides,
        seed=a.seed,
        progress=True,
    )
    before = flow_straightness(load_run(a.run), n=a.straightness_n)
    after = flow_straightness(load_run(res.run_dir), n=a.straightness_n)
    print(f"reflow: {res.step} steps ({res.elapsed:.0f} s) -> {res.run_dir}")
    s0, s1 = before["straightness"], after["straightness"]
    print(f"straightness (Liu et al. 2023, {a.straightness_n} Euler trajectories of 50 steps): {s0:.4f} -> {s1:.4f}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab reflow RUN [key=value ...] [--out DIR] [--pairs N] [--pair-steps K] [--config PRESET]`."""
    p = subparsers.add_parser(
        "reflow",
        help="straighten a flow-matching run: retrain it on its own (noise, sample) pairs",
        description="Reflow (Liu et al. 2023): sample (noise, x) pairs with the run's ODE, then fine-tune the flow to regress "
        "x_t = (1 - t) x + t noise -> noise - x on them. The pairs go to OUT_pairs.npz; straightness before and after is printed.",
        epilog="examples:\n  genlab reflow runs/fm_fmnist --config configs/fast/rf2_fmnist.toml\n"
        "  genlab reflow runs/fm_fmnist train.max_time=600 --pairs 20000 --out runs/rf2\n"
        "  genlab sample runs/fm_fmnist_reflow --steps 1 --out rf1.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="a flow-matching run directory")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override any key of the reflow run's config")
    p.add_argument("--out", default=None, help="the reflow run directory (default: RUN_reflow)")
    p.add_argument("--config", default=None, help="a preset to train with (default: the run's own config)")
    p.add_argument("--pairs", type=int, default=10000, help="(noise, sample) pairs to draw (default 10000)")
    p.add_argument("--pair-steps", dest="pair_steps", type=int, default=20, help="sampler steps per pair (default 20)")
    p.add_argument("--sampler", default="ddim", help="the sampler that makes the pairs (default ddim: Euler in t)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs' noise (default 0)")
    p.add_argument("--straightness-n", dest="straightness_n", type=int, default=200, help="trajectories for the straightness report")
    p.set_defaults(fn=_cmd)
    return p


__all__ = ["add_parser", "make_pairs", "reflow", "write_pairs"]
