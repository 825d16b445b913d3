"""Benchmark: GANs on Fashion-MNIST at a fixed CPU budget — genlab's default preset against a plain DCGAN.

Both contenders are trained by the same code (genlab's trainer) on the same networks (DCGAN, 28 -> 14 -> 7), for the
same wall-clock budget and threads: configs/gan/gan_fmnist.toml (hinge loss, spectral norm in D, a critic on pairs, two time-scale
learning rates, EMA of G) against configs/gan/dcgan_fmnist.toml (the non-saturating loss, one learning rate, no
spectral norm, no EMA). Then `genlab.evaluate` on the test split with genlab's Fashion-MNIST feature network:
FID, KID, precision, recall (10,000 samples), plus training images/s and a 64-sample grid per contender.

    python bench/gan_fmnist.py                          # 600 s each, one after the other, 2 threads
    python bench/gan_fmnist.py --budget 300 --parallel  # both at once, one thread each (same budget, half the wall time)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = [
    ("genlab gan_fmnist (hinge + SN + pack 2 + TTUR + EMA)", "configs/gan/gan_fmnist.toml"),
    ("plain DCGAN (non-saturating)", "configs/gan/dcgan_fmnist.toml"),
]


def train(preset: str, budget: float, threads: int, run_dir: str) -> dict:
    import genlab

    torch.set_num_threads(threads)
    overrides = [f"train.max_time={budget}", f"train.num_threads={threads}", "train.progress=false"]
    res = genlab.train(ROOT / preset, overrides, run_dir=run_dir, resume="never")
    batch = genlab.build_run_config(ROOT / preset).train.batch_size
    return {"steps": res.step, "seconds": round(res.elapsed, 1), "images_per_s": round(res.step * batch / res.elapsed, 1)}


def evaluate(run_dir: str, n_samples: int, grid: Path) -> dict:
    import genlab
    from genlab.modalities.image import save_image_grid

    ev = genlab.evaluate(run_dir, [f"eval.n_samples={n_samples}"])
    x, _ = genlab.sample(genlab.load(run_dir), 64, seed=1)
    save_image_grid(x, grid, nrow=8, scale=2)
    return {k: ev[k] for k in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=600, help="training seconds per contender")
    ap.add_argument("--threads", type=int, default=2, help="threads in all (split between the contenders with --parallel)")
    ap.add_argument("--parallel", action="store_true", help="train both contenders at once, threads // 2 each")
    ap.add_argument("--n-samples", type=int, default=10_000, help="samples for FID/KID/precision/recall")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gan_fmnist.json"))
    a = ap.parse_args()
    outdir = Path(a.out).parent
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    threads = max(1, a.threads // 2) if a.parallel else a.threads
    run_dirs = [str(outdir / "runs" / f"{Path(p).stem}_{int(a.budget)}s_{stamp}") for _, p in CONTENDERS]
    args = [(p, a.budget, threads, d) for (_, p), d in zip(CONTENDERS, run_dirs)]
    ctx = mp.get_context("spawn")
    with ctx.Pool(2 if a.parallel else 1, maxtasksperchild=1) as pool:
        trained = pool.starmap(train, args)
    torch.set_num_threads(a.threads)
    rows = []
    for (name, preset), d, tr in zip(CONTENDERS, run_dirs, trained):
        grid = outdir / f"gan_fmnist_{Path(preset).stem}_{int(a.budget)}s.png"
        row = {"model": name, "preset": preset, "budget_s": a.budget, "threads": threads, **tr, **evaluate(d, a.n_samples, grid)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| model | budget | threads | steps | images/s | FID | KID x 1e3 | precision | recall |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['budget_s']:g} s | {r['threads']} | {r['steps']} | {r['images_per_s']:.0f} | {r['fid']:.2f} | "
            f"{1e3 * r['kid']:.2f} | {r['precision']:.3f} | {r['recall']:.3f} |"
        )
    meta = {"parallel": a.parallel, "n_samples": a.n_samples, "features": "fashion_mnist", "torch": torch.__version__}
    Path(a.out).write_text(json.dumps({"rows": rows, **meta}, indent=2) + "\n")


if __name__ == "__main__":
    main()
