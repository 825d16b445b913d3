"""Benchmark: autoregressive models on Fashion-MNIST at a fixed CPU budget per model.

Each preset trains for the same wall-clock budget in its own process (default 10 minutes, 2 threads), then the
evaluation harness (`genlab.evaluate`) reports on the test split: the exact NLL (PixelCNN, Transformer: bits/dim
of the 8-bit integers, nats per image for binarised data) or the two-stage bound (VQ-VAE + prior), seconds per
sample (pixel-by-pixel sampling is the autoregressive models' cost) and FID/KID with genlab's Fashion-MNIST
feature network. Sampling 784 pixels one at a time is slow on a CPU, so FID uses --n-samples samples (default
1000: noisier and biased upwards against the usual 10,000; the number is in the table).

    python bench/autoregressive_fmnist.py                                    # 600 s per model
    python bench/autoregressive_fmnist.py --models pixelcnn --merge          # one model; the others' rows stay in the JSON
    python bench/autoregressive_fmnist.py --budget 120 --n-eval 2000 --n-samples 500 --models pixelcnn vqvae_prior
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch
from _common import in_process, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "pixelcnn": ("Gated PixelCNN, 8-bit, logistic mixture", "configs/autoregressive/pixelcnn_fmnist.toml"),
    "pixelcnn_binarized": ("Gated PixelCNN, binarised, Bernoulli", "configs/autoregressive/pixelcnn_binarized_fmnist.toml"),
    "vqvae_prior": ("VQ-VAE + PixelCNN prior, 8-bit", "configs/autoregressive/vqvae_prior_fmnist.toml"),
    "transformer_binarized": ("Transformer, binarised pixels as tokens", "configs/autoregressive/transformer_binarized_fmnist.toml"),
}


def train_and_eval(preset: str, budget: float, threads: int, run_dir: str, n_eval: int, n_samples: int, q_out: mp.Queue) -> None:
    import genlab
    from genlab.modalities.image import save_image_grid

    torch.set_num_threads(threads)
    res = genlab.train(
        ROOT / preset,
        [f"train.max_time={budget}", f"train.num_threads={threads}", "train.progress=false"],
        run_dir=run_dir,
        resume="never",
    )
    bs = genlab.build_run_config(ROOT / preset).train.batch_size
    t0 = time.perf_counter()
    ev = genlab.evaluate(run_dir, [f"eval.n_examples={n_eval}", f"eval.n_samples={n_samples}"])
    eval_s = time.perf_counter() - t0
    model = genlab.load(run_dir)
    x, _ = genlab.sample(model, 36, seed=1)
    save_image_grid(x, Path(run_dir).parent / f"{Path(preset).stem}.png", nrow=6, scale=2)
    q_out.put(
        {
            "steps": res.step,
            "train_s": res.elapsed,
            "images_per_s": res.step * bs / max(res.elapsed, 1e-9),
            "peak_rss_mb": peak_rss_mb(),
            "likelihood": ev.get("likelihood"),
            "nll_nats": ev.get("nll", ev.get("nll_bound")),
            "bits_per_dim": ev.get("bits_per_dim"),
            "seconds_per_sample": ev.get("seconds_per_sample"),
            "fid": ev.get("fid"),
            "kid": ev.get("kid"),
            "eval_s": eval_s,
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=600, help="training seconds per model (default 600)")
    ap.add_argument("--models", nargs="+", default=list(PRESETS), choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-eval", type=int, default=10_000, help="test images for the likelihood (default: all 10,000)")
    ap.add_argument("--n-samples", type=int, default=1000, help="samples for FID/KID and seconds per sample")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "autoregressive_fmnist.json"))
    ap.add_argument("--merge", action="store_true", help="keep the other models' rows already in --out (run the models one at a time)")
    a = ap.parse_args()
    outdir = Path(a.out).parent
    outdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = []
    if a.merge and Path(a.out).exists():
        kept = [r for r in json.loads(Path(a.out).read_text())["rows"] if r["preset"] not in {PRESETS[k][1] for k in a.models}]
    rows = []
    for key in a.models:
        name, preset = PRESETS[key]
        run_dir = str(outdir / "runs" / f"autoregressive_{key}_{int(a.budget)}s_{stamp}")
        r = in_process(train_and_eval, preset, a.budget, a.threads, run_dir, a.n_eval, a.n_samples)
        sizes = {"threads": a.threads, "n_eval": a.n_eval, "n_samples": a.n_samples}
        rows.append({"model": name, "preset": preset, "budget_s": a.budget, **sizes, **r})
        rows[-1]["command"] = " ".join(sys.argv)
        print(json.dumps(rows[-1]), flush=True)
    order = {p: i for i, (_, p) in enumerate(PRESETS.values())}
    rows = sorted(kept + rows, key=lambda r: order.get(r["preset"], len(order)))
    meta = {
        "machine": f"{a.threads} threads, torch {torch.__version__}",
        "fid": "genlab fashion_mnist feature net, n_samples samples vs the 10,000 test images (evaluation harness)",
    }
    Path(a.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print("\n| model | budget | steps | images/s | test NLL | s/sample | FID (samples) | KID |")
    print("|" + " --- |" * 8)
    for r in rows:
        binary = "binarised" in r["model"]
        nll = f"{r['nll_nats']:.1f} nats" if binary else f"{r['bits_per_dim']:.3f} bits/dim"
        if r["likelihood"] == "bound":
            nll = "<= " + nll
        print(
            f"| {r['model']} | {r['budget_s']:.0f} s | {r['steps']} | {r['images_per_s']:.0f} | {nll} | "
            f"{r['seconds_per_sample']:.3f} | {r['fid']:.1f} ({r.get('n_samples', '?')}) | {r['kid']:.4f} |"
        )
    print(f"\n-> {a.out}")


if __name__ == "__main__":
    main()
