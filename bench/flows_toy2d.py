"""Benchmark: genlab's 2D flows (RealNVP, MAF, NSF coupling and autoregressive) against zuko's and normflows' neural
spline flows on five toy densities, at a fixed step budget and at equal time (CPU seconds of one thread).

Held-out NLL (nats per point, 20,000 fresh points) next to the toy's exact entropy (the best possible NLL), training
steps/s (per CPU second) and parameter counts. Every flow trains with the same loop: Adam, lr 1e-3 with a cosine decay to 1e-4 over the
budget, batch 512, float32, one CPU thread. zuko and normflows are optional (bench-only) dependencies:
    pip install zuko normflows

    python bench/flows_toy2d.py --steps 800 --seconds 6 --headline 60 --jobs 2   # docs/flows.md's tables (~6 min, 2 cores)
    python bench/flows_toy2d.py --steps 500 --seconds 5 --headline 0 --datasets moons
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from genlab.config import build
from genlab.data.toy2d import toy_distribution
from genlab.models import build_model
from genlab.registry import model as registry_model
from genlab.report.density import density_on_grid, save_density_grid
from genlab.spec import DataSpec

DATASETS = ("moons", "checkerboard", "8gaussians", "pinwheel", "2spirals")
ROOT = Path(__file__).resolve().parent


class Wrapped(nn.Module):
    """A uniform face for every flow: log_prob(x) -> (B,) nats."""

    def __init__(self, log_prob: Callable[[torch.Tensor], torch.Tensor], module: nn.Module):
        super().__init__()
        self.module, self._log_prob = module, log_prob

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self._log_prob(x)


def genlab_flow(name: str, **cfg) -> Wrapped:
    cfg_cls, _ = registry_model(name)
    m = build_model(build(cfg_cls, {"name": name, **cfg}, "model"), DataSpec((2,), encoding="continuous"))
    return Wrapped(m.log_prob_continuous, m)


def zuko_nsf(hidden: int = 128, transforms: int = 4) -> Wrapped:
    import zuko

    flow = zuko.flows.NSF(2, bins=8, transforms=transforms, hidden_features=(hidden, hidden))
    return Wrapped(lambda x: flow().log_prob(x), flow)


def normflows_nsf(hidden: int = 64, layers: int = 4) -> Wrapped:
    """normflows' README recipe for 2D: autoregressive RQ splines (residual MADE) with LU-linear permutations."""
    import normflows as nf

    flows = []
    for _ in range(layers):
        flows += [nf.flows.AutoregressiveRationalQuadraticSpline(2, 2, hidden, num_bins=8, tail_bound=5.0), nf.flows.LULinearPermute(2)]
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), flows)
    return Wrapped(model.log_prob, model)


FLOWS: dict[str, Callable[[], Wrapped]] = {
    "genlab realnvp": lambda: genlab_flow("realnvp", layers=8, hidden=(128, 128), norm="none"),
    "genlab maf": lambda: genlab_flow("maf", layers=6, hidden=(128, 128)),
    "genlab nsf": lambda: genlab_flow("nsf", variant="coupling", layers=4, hidden=(128, 128), bins=16, bound=5.0),
    "genlab nsf-ar": lambda: genlab_flow("nsf", variant="autoregressive", layers=4, hidden=(128, 128), bins=8, bound=5.0),
    "zuko nsf": zuko_nsf,
    "normflows nsf": normflows_nsf,
}


def available(name: str) -> bool:
    lib = name.split()[0]
    if lib == "genlab":
        return True
    try:
        __import__(lib)
        return True
    except ImportError:
        return False


@torch.no_grad()
def held_out_nll(flow: Wrapped, test: torch.Tensor) -> float:
    flow.eval()
    out = torch.cat([flow.log_prob(x) for x in test.split(5000)])
    flow.train()
    return -out.mean().item()


def train(flow: Wrapped, data: torch.Tensor, *, steps: int | None, seconds: float | None, batch: int, seed: int) -> dict:
    """Train with Adam, lr 1e-3 cosine-decayed to 1e-4 over the budget (steps or CPU seconds); returns steps and times.

    Budgets and speeds are in process CPU time: with one thread it is the wall-clock time of an idle core, and it
    does not change when other jobs share the machine (wall-clock seconds are recorded beside it)."""
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    flow.train()
    step, t0, w0, spent, bad = 0, time.process_time(), time.perf_counter(), 0.0, 0
    while True:
        progress = step / steps if steps else spent / seconds
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * progress))
        x = data[torch.randint(0, len(data), (batch,), generator=g)]
        loss = -flow.log_prob(x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if torch.isfinite(loss):
            opt.step()
        else:
            bad += 1
        step += 1
        spent = time.process_time() - t0
    wall = time.perf_counter() - w0
    speed = round(step / spent, 1)
    return {"steps": step, "cpu_seconds": round(spent, 2), "wall_seconds": round(wall, 2), "steps_per_s": speed, "non_finite_steps": bad}


def run(name: str, dataset: str, *, steps: int | None, seconds: float | None, batch: int, seed: int = 0) -> tuple[dict, Wrapped]:
    dist = toy_distribution(dataset)
    data = dist.sample(50_000, torch.Generator().manual_seed(2 * seed))
    test = dist.sample(20_000, torch.Generator().manual_seed(2 * seed + 1))
    torch.manual_seed(seed)
    flow = FLOWS[name]()
    stats = train(flow, data, steps=steps, seconds=seconds, batch=batch, seed=seed)
    nll = held_out_nll(flow, test)
    entropy = dist.entropy(n=50_000, seed=7)
    params = sum(p.numel() for p in flow.parameters())
    row = {"flow": name, "dataset": dataset, "nll": round(nll, 4), "entropy": round(entropy, 4), "gap": round(nll - entropy, 4)}
    row.update(stats, params=params, batch=batch, budget="steps" if steps else "seconds")
    return row, flow


def table(rows: list[dict], key: str, title: str) -> str:
    flows = list(dict.fromkeys(r["flow"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines = [f"\n{title}", "| flow | params | " + " | ".join(datasets) + " | steps/s |", "|---" * (len(datasets) + 3) + "|"]
    for f in flows:
        mine = {r["dataset"]: r for r in rows if r["flow"] == f}
        cells = [f"{mine[d][key]:.3f}" if d in mine else "-" for d in datasets]
        speed = sum(r["steps_per_s"] for r in mine.values()) / max(1, len(mine))
        lines.append(f"| {f} | {next(iter(mine.values()))['params']:,} | " + " | ".join(cells) + f" | {speed:.0f} |")
    return "\n".join(lines)


def job(task: tuple) -> tuple[dict, torch.Tensor | None]:
    """One run (mode, dataset, flow, budget, batch, threads[, seed]) -> its row and, for the step budget, its density grid."""
    mode, d, f, budget, batch, threads, *rest = task
    seed = rest[0] if rest else 0
    torch.set_num_threads(threads)
    by_steps = mode == "steps"
    row, flow = run(f, d, steps=int(budget) if by_steps else None, seconds=None if by_steps else budget, batch=batch, seed=seed)
    row["budget"], row["seed"] = mode, seed
    if not by_steps:
        return row, None
    flow.eval()
    return row, density_on_grid(lambda x: flow.log_prob(x.float()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--flows", nargs="+", default=list(FLOWS), choices=list(FLOWS))
    ap.add_argument("--steps", type=int, default=2000, help="fixed step budget per run (0 = skip)")
    ap.add_argument("--seconds", type=float, default=15.0, help="equal-time budget per run, CPU seconds (0 = skip)")
    ap.add_argument("--headline", type=float, default=60.0, help="CPU seconds for the checkerboard NSF comparison (0 = skip)")
    ap.add_argument("--headline-seeds", type=int, default=1, help="seeds of the checkerboard comparison (the table gives their mean)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads: 1 by default (512 x 128 matmuls gain little from a 2nd thread)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once, one process each (budgets are CPU time)")
    ap.add_argument("--out", default=str(ROOT / "results" / "flows_toy2d.json"))
    ap.add_argument("--figure", default=str(ROOT.parent / "docs" / "img" / "flows" / "toy_densities.png"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flows = [f for f in args.flows if available(f)]
    skipped = sorted(set(args.flows) - set(flows))
    if skipped:
        print(f"skipping (not installed): {', '.join(skipped)}")
    results: dict = {"config": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": []}
    tasks = [
        ("headline", "checkerboard", f, args.headline, 512, args.threads, seed)
        for seed in range(args.headline_seeds)
        for f in flows
        if "nsf" in f and args.headline
    ]
    for mode, budget in (("steps", args.steps), ("seconds", args.seconds)):
        if budget:
            tasks += [(mode, d, f, budget, args.batch, args.threads) for d in args.datasets for f in flows]
    grids: dict[tuple[str, str], torch.Tensor] = {}
    with multiprocessing.get_context("spawn").Pool(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        for row, grid in pool.imap(job, tasks) if pool else map(job, tasks):  # longest (headline) runs first
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
            if grid is not None:
                grids[row["dataset"], row["flow"]] = grid
    pictures = [
        (d, [("true", density_on_grid(toy_distribution(d).log_prob))] + [(f, grids[d, f]) for f in flows if (d, f) in grids])
        for d in args.datasets
        if any((d, f) in grids for f in flows)
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    if pictures:
        save_density_grid(pictures, args.figure)
    for mode, budget in (("steps", args.steps), ("seconds", args.seconds)):
        rows = [r for r in results["runs"] if r["budget"] == mode]
        if rows:
            what = f"{budget} steps" if mode == "steps" else f"{budget:g} s"
            print(table(rows, "nll", f"held-out NLL (nats), {what} at batch {args.batch}; entropy = best possible"))
            print(table(rows, "gap", f"NLL - entropy (nats), {what}"))
    head = [r for r in results["runs"] if r["budget"] == "headline"]
    if head:
        print(f"\ncheckerboard, {args.headline:g} s at batch 512: NLL - entropy")
        for f in dict.fromkeys(r["flow"] for r in head):
            mine = [r for r in head if r["flow"] == f]
            gaps = ", ".join(f"{r['gap']:+.3f}" for r in mine)
            mean = sum(r["gap"] for r in mine) / len(mine)
            steps = sum(r["steps"] for r in mine) / len(mine)
            print(f"  {f:<16} {mean:+.3f} nats (seeds: {gaps}; {steps:.0f} steps, {mine[0]['params']:,} params)")
    entropy_rows = {r["dataset"]: r["entropy"] for r in results["runs"]}
    print("\nentropy (nats): " + ", ".join(f"{d} {e:.3f}" for d, e in entropy_rows.items()))


if __name__ == "__main__":
    main()
