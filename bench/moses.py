"""Benchmark: the MOSES distribution-learning table (Polykovskiy et al. 2020) for a model trained at a fixed CPU budget.

Trains a preset (default CharRNN, configs/molecules/charrnn_moses.toml) for --budget seconds (default 600, 2 threads)
on the MOSES train split, draws --n molecules (default 30,000, as MOSES recommends) and scores them with
genlab.metrics.moses against the whole test and scaffold-test splits (the molsets wheel's precomputed statistics) and
the train split (novelty). The floor row is a random sample of --n training molecules scored the same way: what a
model that had memorised the training set would get. MOSES's published rows are printed beside them.

    flock /tmp/genlab-heavy.lock .venv/bin/python bench/moses.py                       # 30 minutes + scoring
    flock /tmp/genlab-heavy.lock .venv/bin/python bench/moses.py --model transformer --steps 6000  # steps, not seconds
    flock /tmp/genlab-heavy.lock .venv/bin/python bench/moses.py --budget 120 --n 2000  # a quick look

--steps gives the budget in optimiser steps (those the idle machine trains in --budget seconds, measured beforehand),
so that a run on a shared or paused machine keeps its meaning. The floor row depends only on N, the seed and the
reference files: it is scored once and kept in --floor-cache (about 15 minutes of the 2 cores at N = 30,000).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import time
from pathlib import Path

import torch

from genlab.metrics.moses_published import MOSES_COLUMNS, PUBLISHED_ROWS

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "charrnn": ("CharRNN (LSTM, SMILES tokens)", "configs/molecules/charrnn_moses.toml"),
    "transformer": ("Transformer (SMILES tokens)", "configs/molecules/transformer_moses.toml"),
    "smiles_vae": ("SMILES VAE (GRU)", "configs/molecules/smiles_vae_moses.toml"),
}
COLUMNS = (*MOSES_COLUMNS, "logP", "SA", "QED", "weight")  # the MOSES table, then the property distances
# MOSES's published means (molecularsets/moses README, Table 2 of the paper): 30,000 samples, 3 runs.
PUBLISHED = {f"MOSES {m} (published)": PUBLISHED_ROWS[m] for m in ("Train", "CharRNN", "VAE", "AAE", "JTN-VAE", "LatentGAN")}


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"


def table(rows: dict[str, dict]) -> str:
    lines = ["| row | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def floor_cache(folder: str, floor: list[str], described: dict, metrics_file: str) -> Path | None:
    """Where the floor row of these exact molecules, references and metric code is kept (None: no cache)."""
    if not folder:
        return None
    code = Path(metrics_file).read_text()
    key = hashlib.sha256(json.dumps([floor, described, code], sort_keys=True).encode()).hexdigest()[:16]
    return Path(folder) / f"floor_{len(floor)}_{key}.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(PRESETS), default="charrnn")
    ap.add_argument("--budget", type=float, default=1800.0, help="training seconds (the issue's 30 CPU-minutes)")
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps instead of --budget seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=30000, help="molecules sampled and scored (MOSES: 30,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default=str(ROOT / "bench/results/runs/moses"))
    ap.add_argument("--out", default=None, help="result JSON (default bench/results/moses_<model>.json; SMILES beside it)")
    ap.add_argument(
        "--floor-cache",
        default=str(Path(os.environ.get("GENLAB_DATA", Path.home() / ".cache" / "genlab")) / "molecules" / "moses_floor"),
        help="folder of scored floor rows, one per (N, seed, reference files); '' scores the floor every time",
    )
    ap.add_argument("--override", nargs="*", default=[], help="extra section.key=value overrides of the preset")
    args = ap.parse_args()
    args.out = args.out or str(ROOT / f"bench/results/moses_{args.model}.json")
    if args.steps is not None and args.steps < 1:
        ap.error(f"--steps {args.steps}: expected a positive number of optimiser steps")

    import genlab
    from genlab.data.molecules import molecule_source
    from genlab.metrics import moses
    from genlab.modalities.molecules import decode_smiles, references

    torch.set_num_threads(args.threads)
    label, preset = PRESETS[args.model]
    limit = [f"train.max_time={args.budget}"] if args.steps is None else [f"train.max_steps={args.steps}", "train.max_time=1e9"]
    overrides = [*limit, f"train.num_threads={args.threads}", "train.progress=false", *args.override]
    run_dir = Path(args.run_dir) / args.model
    if run_dir.exists():  # the benchmark's own scratch run from an earlier call: always train from scratch
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    res = genlab.train(ROOT / preset, overrides, run_dir=run_dir, resume="never")
    cfg = genlab.build_run_config(ROOT / preset, overrides)
    train_s = time.perf_counter() - t0

    model = genlab.load(run_dir)
    t0 = time.perf_counter()
    x, _ = genlab.sample(model, args.n, seed=args.seed)
    sample_s = time.perf_counter() - t0
    gen = decode_smiles(x, model.spec)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    (Path(args.out).with_suffix(".smi")).write_text("".join(s + "\n" for s in gen))

    refs, described = references(cfg)
    train_smiles = molecule_source(cfg.data).splits["train"]
    train_set = frozenset(train_smiles)
    rows, seconds = {}, {}
    floor = random.Random(args.seed + 1).sample(train_smiles, args.n)
    budget = f"{args.budget:.0f} s" if args.steps is None else f"{args.steps} steps"
    floor_name, model_name = f"train sample, N={args.n} (floor)", f"genlab {label}, {budget}"
    cached = floor_cache(args.floor_cache, floor, described, moses.__file__)
    if cached is not None and cached.exists():
        rows[floor_name] = json.loads(cached.read_text())
        print(f"floor row from {cached}", flush=True)
    for name, smiles in ((floor_name, floor), (model_name, gen)):
        if name in rows:
            continue
        t0 = time.perf_counter()
        rows[name] = moses.moses_metrics(smiles, refs, train_set, n_jobs=args.threads)
        seconds[name] = round(time.perf_counter() - t0, 1)
        if name == floor_name and cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(rows[name], indent=2) + "\n")
    rows.update(PUBLISHED)
    print(table(rows))
    result = {
        "benchmark": "MOSES distribution learning",
        "model": args.model,
        "preset": preset,
        "overrides": overrides,
        "budget_s": args.budget if args.steps is None else None,
        "budget_steps": args.steps,
        "train_elapsed_s": round(res.elapsed, 1),
        "threads": args.threads,
        "n_samples": args.n,
        "seed": args.seed,
        "steps": res.step,
        "train_wall_s": round(train_s, 1),
        "train_smiles_per_s": round(res.step * cfg.train.batch_size / max(res.elapsed, 1e-9), 1),
        "sample_molecules_per_s": round(args.n / sample_s, 1),
        "scoring_s": seconds,
        "references": described,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
