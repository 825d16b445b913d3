"""Benchmark: where multistep consistency sampling should re-noise. For a trained consistency run on Fashion-MNIST, FID / KID of
2- and 4-step sampling at several `sigma_last` (the lowest level; with 2 steps the one re-noising level). The level is chosen
on one seed's samples (--select-seed) and reported, beside the config's default, on another seed's (--seed), so that the
reported FID is not the minimum of noisy draws. Table on stdout, JSON into bench/results/.

    python bench/consistency_levels.py bench/results/runs/fast/ect_3546steps --out bench/results/consistency_levels_ect.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from diffusion_fmnist import quality

GRIDS = {2: [0.4, 0.6, 0.8, 1.1, 1.5, 2.0], 4: [0.2, 0.4, 0.8, 1.5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a trained consistency run directory")
    ap.add_argument("--steps", type=int, nargs="+", default=[2, 4], help="NFE to sweep (default 2 4)")
    ap.add_argument("--levels", type=float, nargs="+", default=None, help="sigma_last values (default: a grid per NFE)")
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--select-seed", type=int, default=1, help="the seed whose samples choose the level")
    ap.add_argument("--seed", type=int, default=0, help="the seed whose samples report the chosen and the default level")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON output (default: bench/results/consistency_levels.json)")
    a = ap.parse_args()

    import genlab

    torch.set_num_threads(a.threads)
    model = genlab.load(a.run)
    if not hasattr(model, "sampling_sigmas"):
        raise SystemExit(f"{a.run}: holds a {type(model).__name__}, not a consistency model")
    default = model.config.sigma_last
    rows = []

    def score(steps: int, level: float, seed: int) -> dict:
        t0 = time.perf_counter()
        x, _ = genlab.sample(model, a.n_samples, seed=seed, steps=steps, sigma_last=level)
        r = {"steps": steps, "sigma_last": level, "seed": seed, "n": a.n_samples, **quality(x), "seconds": time.perf_counter() - t0}
        print(f"  NFE {steps}  sigma_last {level:<5}  seed {seed}  FID {r['fid']:.2f}  KID {r['kid']:.4f}", flush=True)
        rows.append(r)
        return r

    chosen = {}
    for steps in a.steps:
        sweep = [score(steps, level, a.select_seed) for level in a.levels or GRIDS.get(steps, GRIDS[4])]
        chosen[steps] = min(sweep, key=lambda r: r["fid"])["sigma_last"]
        for level in sorted({chosen[steps], default}):
            score(steps, level, a.seed)
    out = Path(a.out or Path(__file__).resolve().parent / "results" / "consistency_levels.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": "2-core CPU, torch " + torch.__version__, "args": vars(a), "default": default, "chosen": chosen, "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| NFE | sigma_last | seed | FID | KID |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['steps']} | {r['sigma_last']} | {r['seed']} | {r['fid']:.2f} | {r['kid']:.4f} |")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
