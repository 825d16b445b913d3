"""Benchmark: mode coverage of every GAN loss on the 8-gaussian ring and the 25-gaussian grid (VEEGAN / PacGAN test).

Each row trains the dataset's preset (configs/gan/gan_<dataset>_toy2d.toml: MLP G and packed MLP D) with one loss
swapped in, for a fixed wall-clock budget, then counts on 2,500 samples of the sampling generator (the EMA when the
preset keeps one) the modes covered (>= 1 sample within 3 std of the mode) and the share of high-quality samples
(within 3 std of their nearest mode). A preset with discriminator rejection sampling (model.drs) samples through it;
its generator alone (drs=False) is scored too. The default presets run at their own budget under `--seeds` training seeds.
Runs go `--workers` at a time, one thread each (2D nets this small gain nothing from a second thread).

    python bench/gan_toy.py                                   # 60 s per loss, default presets at their full 300 s / 120 s, seeds 0 and 1
    python bench/gan_toy.py --budget 20 --no-full-presets     # a quick look
    python bench/gan_toy.py --seeds 4 --datasets 8gaussians   # one data set; the other's rows in the JSON are kept
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("8gaussians", "25gaussians")
LOSSES = ("minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge")


def run(job: dict) -> dict:
    import torch

    import genlab
    from genlab.data.toy2d import toy_distribution
    from genlab.metrics.modes import N_SAMPLES, mixture_coverage
    from genlab.modalities.points import save_scatter

    torch.set_num_threads(1)
    preset = ROOT / "configs" / "gan" / f"gan_{job['dataset']}_toy2d.toml"
    overrides = [f"model.loss={job['loss']}", "train.num_threads=1", "train.progress=false", f"train.seed={job['seed']}"]
    if job["budget"] is not None:
        overrides.append(f"train.max_time={job['budget']}")
    res = genlab.train(preset, overrides, run_dir=job["run_dir"], resume="never")
    # 2,500 samples (sampling seed 0) scored and drawn; with discriminator rejection sampling, also the generator alone.
    drs = res.model.config.drs
    x, _ = genlab.sample(res.model, N_SAMPLES, seed=0)
    x_alone = genlab.sample(res.model, N_SAMPLES, seed=0, drs=False)[0] if drs else x
    cov, alone = ({**mixture_coverage(v, job["dataset"]), "n_samples": N_SAMPLES} for v in (x, x_alone))
    if job.get("picture"):
        ref = toy_distribution(job["dataset"]).sample(N_SAMPLES, torch.Generator().manual_seed(1))
        save_scatter(x, job["picture"], reference=ref)
        if drs:
            save_scatter(x_alone, job["picture"].replace(".png", "_g_alone.png"), reference=ref)
    return {
        **{k: job[k] for k in ("dataset", "loss", "row", "seed")},
        "budget_s": round(res.elapsed, 1),
        "steps": res.step,
        **cov,
        "drs": drs,
        "g_alone_modes": alone["modes_covered"],
        "g_alone_high_quality": alone["high_quality"],
    }


def main() -> None:
    from genlab.config import load_toml

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=60, help="training seconds per loss")
    ap.add_argument("--no-full-presets", action="store_true", help="skip the rows of the default presets at their own budget")
    ap.add_argument("--seeds", type=int, default=2, help="training seeds 0 .. n-1 for each default preset row")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS, help="only these (others' rows in --out are kept)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gan_toy.json"))
    a = ap.parse_args()
    outdir = Path(a.out).parent
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jobs = []
    if not a.no_full_presets:  # longest first, so the pool finishes together
        for ds in reversed(a.datasets):
            preset = load_toml(ROOT / "configs" / "gan" / f"gan_{ds}_toy2d.toml")
            for seed in range(a.seeds):
                pic = str(outdir / f"gan_toy_{ds}.png") if seed == 0 else None
                job = {"dataset": ds, "loss": preset["model"]["loss"], "row": "default preset", "budget": None, "picture": pic}
                jobs.append({**job, "seed": seed})
    jobs += [{"dataset": ds, "loss": loss, "row": f"{a.budget:g} s", "budget": a.budget, "seed": 0} for ds in a.datasets for loss in LOSSES]
    for i, j in enumerate(jobs):
        j["run_dir"] = str(outdir / "runs" / f"gan_toy_{j['dataset']}_{j['loss']}_{i}_{stamp}")
    with mp.get_context("spawn").Pool(a.workers, maxtasksperchild=1) as pool:
        rows = []
        for r in pool.imap_unordered(run, jobs):
            rows.append(r)
            print(json.dumps(r), flush=True)
    if set(a.datasets) != set(DATASETS) and Path(a.out).is_file():
        rows += [r for r in json.loads(Path(a.out).read_text())["rows"] if r["dataset"] not in a.datasets]
    rows.sort(key=lambda r: (r["dataset"], r["row"] != "default preset", LOSSES.index(r["loss"]), r["seed"]))
    print("\n| data | run | loss | seed | steps | modes covered | high-quality share | G alone (no DRS) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        modes = f"{r['modes_covered']}/{r['n_modes']}"
        alone = f"{r['g_alone_modes']}/{r['n_modes']}, {r['g_alone_high_quality']:.1%}" if r["drs"] else "—"
        row = f"| {r['dataset']} | {r['row']} | {r['loss']} | {r['seed']} | {r['steps']} | {modes} | {r['high_quality']:.1%} | {alone} |"
        print(row)
    Path(a.out).write_text(json.dumps({"rows": rows, "budget_s": a.budget, "workers": a.workers, "threads_per_run": 1}, indent=2) + "\n")


if __name__ == "__main__":
    main()
