"""Benchmark: Glow and multi-scale RealNVP on Fashion-MNIST at a fixed CPU budget (default 10 minutes each).

Each preset (configs/flow/glow_fmnist.toml, configs/flow/realnvp_fmnist.toml) trains for the same wall-clock budget
through genlab's trainer; then `genlab.evaluate` gives the test bits/dim (exact, uniform dequantisation, genlab's
convention) and FID/KID with genlab's fashion_mnist feature network on 10,000 samples, at temperature 1 and 0.7.
Also: training images/s and seconds per sample. Sample grids go to bench/results/flows_fmnist_<preset>.png.

    python bench/flows_fmnist.py                         # 600 s per model, 2 threads
    python bench/flows_fmnist.py --budget 150 --n-eval 2000 --n-samples 5000   # what docs/flows.md reports
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"glow": "configs/flow/glow_fmnist.toml", "realnvp": "configs/flow/realnvp_fmnist.toml"}


def main() -> None:
    import genlab
    from genlab.modalities.image import save_image_grid

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--budget", type=float, default=600.0, help="training seconds per model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=None, help="test images for bits/dim (default: all 10,000)")
    ap.add_argument("--n-samples", type=int, default=10_000, help="samples for FID/KID")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 1.0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "flows_fmnist.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    outdir = Path(a.out).parent
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for name in a.models:
        preset = ROOT / PRESETS[name]
        run_dir = outdir / "runs" / f"flows_{name}_fmnist_{int(a.budget)}s_{stamp}"
        over = [f"train.max_time={a.budget}", f"train.num_threads={a.threads}", "train.progress=false", "train.sample_every=none"]
        res = genlab.train(preset, over, run_dir=run_dir, resume="never")
        batch = genlab.build_run_config(preset).train.batch_size
        row = {"model": name, "preset": PRESETS[name], "budget_s": a.budget, "steps": res.step, "train_seconds": round(res.elapsed, 1)}
        row["images_per_s"] = round(res.step * batch / res.elapsed, 1)
        row["params"] = sum(p.numel() for p in res.model.parameters())
        eval_over = [f"eval.n_samples={a.n_samples}"] + ([f"eval.n_examples={a.n_eval}"] if a.n_eval else [])
        for t in a.temperatures:
            ev = genlab.evaluate(run_dir, eval_over, temperature=t)
            row["bits_per_dim"] = ev["bits_per_dim"]
            row[f"fid_t{t:g}"] = ev["fid"]
            row[f"kid_t{t:g}"] = ev["kid"]
            row[f"seconds_per_sample_t{t:g}"] = ev["seconds_per_sample"]
            if "accuracy" in ev:
                row[f"class_accuracy_t{t:g}"] = ev["accuracy"]
            model = genlab.load(run_dir)
            x, _ = genlab.sample(model, 100, seed=1, temperature=t)
            save_image_grid(x, outdir / f"flows_fmnist_{name}_t{t:g}.png", nrow=10, scale=2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(a.out).write_text(json.dumps({"rows": rows, "threads": a.threads, "torch": torch.__version__}, indent=1))
    temps = a.temperatures
    head = "| model | budget | steps | images/s | test bits/dim | " + " | ".join(f"FID T={t:g}" for t in temps) + " | s/sample |"
    print("\n" + head + "\n" + "|---" * (6 + len(temps)) + "|")
    for r in rows:
        fids = " | ".join(f"{r[f'fid_t{t:g}']:.1f}" for t in temps)
        sps = r[f"seconds_per_sample_t{temps[-1]:g}"]
        cells = [r["model"], f"{r['budget_s']:g} s", str(r["steps"]), f"{r['images_per_s']:.0f}", f"{r['bits_per_dim']:.3f}"]
        cells += [fids, f"{sps:.2e}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
