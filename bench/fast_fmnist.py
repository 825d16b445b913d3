"""Benchmark: few-step generation on Fashion-MNIST at equal CPU budgets — the diffusion preset, flow matching, 2-rectified flow
(reflow), consistency distillation and improved consistency training; FID / KID at NFE 1, 2, 4, 8, 20 and seconds per image.

Every row gets the same total --budget seconds of training (a teacher's training, reflow's pair generation and the student's
training together for the two-stage rows: the teacher gets --teacher-fraction of it). Samples are scored with genlab's own
Fashion-MNIST feature network against the test split (see bench/diffusion_fmnist.py); the samples of every row go beside its
run, a picture per row (8 samples at each NFE) and the table + JSON into bench/results/.

    python bench/fast_fmnist.py                                            # the issue's benchmark: 1,200 s a row, 10,000 samples
    python bench/fast_fmnist.py --budget 300 --n-samples 2000 --rows diffusion fm   # a reduced run
    python bench/fast_fmnist.py --steps 300 --n-samples 500 --rows diffusion fm      # equal FLOPs instead of seconds (busy machine)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import in_process
from diffusion_fmnist import quality

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PRESETS = {
    "diffusion": "configs/diffusion/ddpm_fmnist.toml",
    "fm": "configs/fast/fm_fmnist.toml",
    "rf2": "configs/fast/rf2_fmnist.toml",
    "cd": "configs/fast/cd_fmnist.toml",
    "ict": "configs/fast/ict_fmnist.toml",
    "ect": "configs/fast/ect_fmnist.toml",
}
TEACHER = {"rf2": "fm", "cd": "fm", "ect": "fm"}  # the two-stage rows and the preset their teacher trains with
# GFLOP per training image (forward + backward, torch.utils.flop_counter) and per sampled image and NFE: a budget given in
# optimiser steps of the diffusion preset (--steps) is converted into each row's own steps at equal FLOPs.
TRAIN_GFLOP = {"diffusion": 0.611, "fm": 0.611, "rf2": 0.611, "cd": 1.22, "ict": 0.814, "ect": 0.814}
SECOND_STEPS = 1773 / 600  # diffusion-preset steps per second of the idle 2-core machine: ect's curriculum length from seconds
NFE_GFLOP = 0.204
BATCH = 64
SAMPLERS = {"diffusion": ["dpmpp_2m"], "fm": ["ddim", "heun", "dpmpp_2m"], "rf2": ["ddim"], "cd": [None], "ict": [None], "ect": [None]}


EXTRA: list[str] = []  # --override: applied to every training run of the benchmark


def budget_overrides(row: str, budget: float, steps_mode: bool) -> list[str]:
    """train.max_time = budget seconds, or (steps mode) train.max_steps = the row's steps costing `budget` diffusion-preset steps;
    then the --override keys."""
    if not steps_mode:
        return [f"train.max_time={budget}", *EXTRA]
    return [f"train.max_steps={max(1, round(budget * TRAIN_GFLOP['diffusion'] / TRAIN_GFLOP[row]))}", "train.max_time=1e9", *EXTRA]


def _train(preset: str, over: list[str], threads: int, run_dir: str, extra: list[str], queue) -> None:
    import genlab

    torch.set_num_threads(threads)
    over = [*over, f"train.num_threads={threads}", "train.progress=false", *extra]
    res = genlab.train(ROOT / preset, over, run_dir=run_dir, resume="auto")
    queue.put({"steps": res.step, "seconds": res.elapsed})


def _reflow(teacher: str, budget: float | list[str], threads: int, run_dir: str, pairs: int, pair_steps: int, queue) -> None:
    from genlab.apps.reflow import reflow

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    over = [f"train.num_threads={threads}", "train.progress=false"]
    seconds = budget if isinstance(budget, float) else None
    over += [] if seconds is not None else budget
    res = reflow(teacher, out=run_dir, n_pairs=pairs, steps=pair_steps, overrides=over, budget=seconds, config=ROOT / PRESETS["rf2"])
    queue.put({"steps": res.step, "seconds": time.perf_counter() - t0, "pairs": pairs, "pair_steps": pair_steps})


def _distill(teacher: str, over: list[str], threads: int, run_dir: str, queue) -> None:
    from genlab.apps.distill import distill

    torch.set_num_threads(threads)
    over = [*over, f"train.num_threads={threads}", "train.progress=false"]
    res = distill(teacher, out=run_dir, overrides=over, config=ROOT / PRESETS["cd"])
    queue.put({"steps": res.step, "seconds": res.elapsed})


def train_row(row: str, a: argparse.Namespace, runs: Path) -> tuple[Path, dict]:
    """Train (or find finished) the runs of one row within its budget; (the run to sample, what training cost)."""
    steps_mode = a.steps is not None
    budget = float(a.steps if steps_mode else a.budget)
    unit = "steps" if steps_mode else "s"
    run_dir = runs / f"{row}_{int(budget)}{unit}"
    info: dict = {"budget": budget, "unit": "diffusion-preset steps (equal FLOPs)" if steps_mode else "seconds"}
    if row not in TEACHER:
        if not (run_dir / "model.safetensors").is_file():
            info["training"] = in_process(_train, PRESETS[row], budget_overrides(row, budget, steps_mode), a.threads, str(run_dir), [])
        return run_dir, info
    t_budget = budget * a.teacher_fraction
    teacher_dir = runs / f"{TEACHER[row]}_teacher_{int(t_budget)}{unit}"  # one teacher run serves every row that takes it
    if not (teacher_dir / "model.safetensors").is_file():
        over = budget_overrides(TEACHER[row], t_budget, steps_mode)
        info["teacher"] = in_process(_train, PRESETS[TEACHER[row]], over, a.threads, str(teacher_dir), [])
    student = budget - t_budget
    if row == "rf2" and steps_mode:  # the pairs' sampling is paid from the student's share
        student -= a.pairs * a.pair_steps * NFE_GFLOP / (BATCH * TRAIN_GFLOP["diffusion"])
        if student < 1:
            raise SystemExit(f"rf2: {a.pairs} pairs at {a.pair_steps} steps cost more than the student's share of the budget")
    if not (run_dir / "model.safetensors").is_file():
        if row == "rf2":
            arg = budget_overrides(row, student, True) if steps_mode else student
            info["student"] = in_process(_reflow, str(teacher_dir), arg, a.threads, str(run_dir), a.pairs, a.pair_steps)
        elif row == "ect":  # tuning: the teacher's weights start the student, which then trains alone
            own = round((student if steps_mode else student * SECOND_STEPS) * TRAIN_GFLOP["diffusion"] / TRAIN_GFLOP[row])
            over = [*budget_overrides(row, student, steps_mode), f"model.init_from={teacher_dir}", f"model.curriculum_steps={own}"]
            info["student"] = in_process(_train, PRESETS[row], over, a.threads, str(run_dir), [])
        else:
            info["student"] = in_process(_distill, str(teacher_dir), budget_overrides(row, student, steps_mode), a.threads, str(run_dir))
    info["teacher_budget"], info["student_budget"] = t_budget, student
    return run_dir, info


def score_row(row: str, run_dir: Path, a: argparse.Namespace) -> list[dict]:
    import genlab
    from genlab.modalities.image import save_image_grid

    torch.set_num_threads(a.threads)
    model = genlab.load(run_dir)
    out, pictures = [], []
    for sampler in a.fm_samplers if row == "fm" and a.fm_samplers else SAMPLERS[row]:
        for nfe in a.nfe:
            kw = {"steps": nfe} if sampler is None else {"sampler": sampler, "steps": nfe}
            t0 = time.perf_counter()
            x, _ = genlab.sample(model, a.n_samples, seed=0, **kw)
            sec = (time.perf_counter() - t0) / a.n_samples
            real = 2 * ((nfe + 1) // 2) - 1 if sampler == "heun" else nfe
            r = {"row": row, "sampler": sampler or "consistency", "nfe": real, "n": a.n_samples, "seconds_per_image": sec, **quality(x)}
            out.append(r)
            pictures.append(x[:8])
            np.savez_compressed(run_dir / f"bench_{r['sampler']}_{nfe}.npz", images=((x + 1) * 127.5).round().clamp(0, 255).byte().numpy())
            print(f"  {row:<9} {r['sampler']:<11} NFE {real:>3}  {sec:.4f} s/image  FID {r['fid']:.2f}  KID {r['kid']:.4f}", flush=True)
        save_image_grid(torch.cat(pictures[-len(a.nfe) :]), RESULTS / f"fast_{row}_{sampler or 'consistency'}.png", nrow=8, scale=2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=1200, help="training seconds per row, teacher and student together (default 1200)")
    ap.add_argument(
        "--steps",
        type=float,
        default=None,
        help="budget in optimiser steps of the diffusion preset instead of seconds: equal FLOPs, "
        "robust to a shared machine (each row trains the steps that cost the same; reflow's pairs are paid from its share)",
    )
    ap.add_argument("--teacher-fraction", type=float, default=0.5, help="share of a two-stage row's budget for its teacher (default 0.5)")
    ap.add_argument("--rows", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    ap.add_argument("--nfe", type=int, nargs="+", default=[1, 2, 4, 8, 20])
    ap.add_argument("--n-samples", type=int, default=10000, help="samples per (row, NFE) (default 10000)")
    ap.add_argument("--pairs", type=int, default=10000, help="rf2: (noise, sample) pairs generated from the teacher")
    ap.add_argument("--pair-steps", type=int, default=20, help="rf2: Euler steps of the teacher per pair")
    ap.add_argument("--fm-samplers", nargs="+", default=None, help="samplers for the fm row (default: ddim heun dpmpp_2m)")
    ap.add_argument(
        "--override", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for every run, e.g. train.warmup_steps=30"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", default=str(RESULTS / "runs" / "fast"), help="where the runs go; finished runs there are reused")
    ap.add_argument("--out", default=str(RESULTS / "fast_fmnist.json"))
    a = ap.parse_args()

    runs = Path(a.runs)
    EXTRA.extend(a.override)
    result: dict = {"machine": "2-core CPU, torch " + torch.__version__, "threads": a.threads, "args": vars(a), "rows": {}}
    table = []
    for row in a.rows:
        print(f"{row}: training ({f'{a.steps:.0f} diffusion-step equivalents' if a.steps else f'{a.budget:.0f} s'})", flush=True)
        run_dir, info = train_row(row, a, runs)
        info["run"] = str(run_dir)
        info["scores"] = score_row(row, run_dir, a)
        result["rows"][row] = info
        table += info["scores"]
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n| row | sampler | NFE | images | s / image | FID | KID |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in table:
        print(f"| {r['row']} | {r['sampler']} | {r['nfe']} | {r['n']} | {r['seconds_per_image']:.4f} | {r['fid']:.2f} | {r['kid']:.4f} |")
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
