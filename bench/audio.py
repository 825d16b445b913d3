"""Benchmark: class-conditional audio generation on spoken digits (CPU size, 1 s at 8 kHz) at a fixed CPU budget.

WaveNet (autoregressive), DiffWave (diffusion), WaveGAN (GAN), and diffusion and SpecGAN on 32 x 32 log-mel
spectrograms inverted by Griffin-Lim (`specdiff`, `specgan`), each from its preset in configs/audio/, trained by
genlab's trainer for the same wall-clock budget and threads, then scored by `genlab.evaluate` with the data set's
digit classifier (genlab.metrics.audio): Inception Score, FID and KID in its feature space, accuracy of conditional
samples (the requested digit), seconds of audio generated per second of wall time, and for the likelihood models
their NLL. The real test clips give the ceiling row (their IS and accuracy; FID / KID of as many training clips of
other speakers against them). Ten clips per model (one per digit) and their spectrograms go to bench/results/audio/.

    flock /tmp/genlab-heavy.lock .venv/bin/python bench/audio.py                 # 1,200 s per model, 2 threads (~2 h for five)
    .venv/bin/python bench/audio.py --budget 60 --n-samples 100 --threads 1      # a quick look (~10 min)
    bench/audio.py --steps wavenet=9000 diffwave=2400 wavegan=3000               # optimiser steps instead of seconds

--steps makes the budget a number of optimiser steps per model (the steps that the idle machine trains in --budget
seconds, measured beforehand), so a benchmark that shares the machine or is paused keeps its meaning.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {
    "wavenet": "configs/audio/wavenet_digits.toml",
    "diffwave": "configs/audio/diffwave_digits.toml",
    "wavegan": "configs/audio/wavegan_digits.toml",
    "specdiff": "configs/audio/specdiff_digits.toml",
    "specgan": "configs/audio/specgan_digits.toml",
}
SHOWN = ("inception_score", "fid", "kid", "accuracy")


def train(name: str, budget: float, threads: int, run_dir: Path, steps: int | None = None) -> dict:
    import genlab

    limit = [f"train.max_time={budget}"] if steps is None else [f"train.max_steps={steps}", "train.max_time=1e9"]
    overrides = [*limit, f"train.num_threads={threads}", "train.progress=false"]
    res = genlab.train(ROOT / PRESETS[name], overrides, run_dir=run_dir, resume="never")
    batch = genlab.build_run_config(ROOT / PRESETS[name]).train.batch_size
    return {
        "steps": res.step,
        "train_seconds": round(res.elapsed, 1),
        "examples_per_s": round(res.step * batch / res.elapsed, 1),
        "examples_per_s_median": median_rate(run_dir),
    }


def median_rate(run_dir: Path) -> float | None:
    """The median of the trainer's logged examples/s: the machine's speed, untouched by a pause or a busy stretch."""
    rates = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("images_per_s"):  # eval rows log 0
            rates.append(row["images_per_s"])
    return round(statistics.median(rates), 1) if rates else None


def evaluate(run_dir: Path, n_samples: int, n_examples: int, clips: Path) -> dict:
    import genlab
    from genlab.modalities import modality_of

    ev = genlab.evaluate(run_dir, [f"eval.n_samples={n_samples}", f"eval.n_examples={n_examples}"])
    model = genlab.load(run_dir)
    x, y = genlab.sample(model, model.spec.num_classes, seed=1)  # one clip per digit
    modality_of(model.spec).preview(x, clips / "spectrograms.png", spec=model.spec, labels=y)
    out = {k: ev.get(k) for k in (*SHOWN, "audio_seconds_per_second", "seconds_per_sample", "nll", "nll_bound", "bits_per_dim")}
    out["reference"] = ev.get("reference", {})
    if ev.get("reference_inverted"):  # spectrogram models: the real test spectrograms through the same inversion
        out["reference_inverted"] = ev["reference_inverted"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=1200, help="training seconds per model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=500, help="generated clips scored per model")
    ap.add_argument("--n-examples", type=int, default=200, help="test clips for the likelihood")
    ap.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--steps", nargs="+", default=[], metavar="MODEL=N", help="optimiser steps per model instead of --budget seconds")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench_audio"), help="where the runs go (replaced)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "audio.json"))
    a = ap.parse_args()
    steps = {}
    for item in a.steps:
        name, _, n = item.partition("=")
        if name not in PRESETS or not n.isdigit() or int(n) < 1:
            ap.error(f"--steps {item!r}: expected MODEL=N with MODEL one of {', '.join(PRESETS)} and N a positive integer")
        steps[name] = int(n)
    torch.set_num_threads(a.threads)
    out_dir = Path(a.out).parent
    t_all = time.perf_counter()
    rows, reference = [], None
    for name in a.models:
        run_dir = Path(a.runs) / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}"
        info = train(name, a.budget, a.threads, run_dir, steps.get(name))
        t0 = time.perf_counter()
        scores = evaluate(run_dir, a.n_samples, a.n_examples, out_dir / "audio" / name)
        reference = reference or scores.pop("reference")
        scores.pop("reference", None)
        rows.append(
            {
                "model": name,
                "preset": PRESETS[name],
                "run": str(run_dir),
                **info,
                **scores,
                "eval_seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(f"{name}: {json.dumps(rows[-1])}", flush=True)
    real = {"model": "real test clips", **{k: (reference or {}).get(k) for k in SHOWN}}

    def cell(v, fmt):
        return f"{v:{fmt}}" if isinstance(v, (int, float)) else "-"

    budget = f"steps {a.steps} (about {a.budget:g} s of the idle machine)" if steps else f"{a.budget:g} s of training"
    print(f"\nspoken digits (8 kHz), {budget} per model, {a.threads} threads, {a.n_samples} samples per model")
    print(f"{'model':<16}{'steps':>7}{'ex/s':>8}{'audio s/s':>11}{'IS':>7}{'FID':>9}{'KID':>9}{'accuracy':>10}{'NLL b/dim':>11}")
    for r in [*rows, real]:
        print(
            f"{r['model']:<16}{cell(r.get('steps'), 'd'):>7}{cell(r.get('examples_per_s_median', r.get('examples_per_s')), '.1f'):>8}"
            f"{cell(r.get('audio_seconds_per_second'), '.3g'):>11}{cell(r.get('inception_score'), '.2f'):>7}{cell(r.get('fid'), '.2f'):>9}"
            f"{cell(r.get('kid'), '.4f'):>9}{cell(r.get('accuracy'), '.3f'):>10}{cell(r.get('bits_per_dim'), '.3f'):>11}"
        )
    result = {
        "budget_s": a.budget,
        "steps": steps or None,
        "threads": a.threads,
        "n_samples": a.n_samples,
        "torch": torch.__version__,
        "total_seconds": round(time.perf_counter() - t_all, 1),
        "results": rows,
        "reference": reference,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {a.out} ({result['total_seconds']:.0f} s in all); clips and spectrograms in {out_dir / 'audio'}")


if __name__ == "__main__":
    main()
