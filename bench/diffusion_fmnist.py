"""Benchmark: diffusion on Fashion-MNIST at a fixed CPU budget — genlab's default preset against the field's usual recipe.

1. genlab: train configs/diffusion/ddpm_fmnist.toml for --budget seconds (or reuse a finished run with --reuse RUN); report
   training images/s, GFLOP per training image (torch.utils.flop_counter) and a profile of the training step.
2. Sample --n-samples images with each sampler at each of --nfe function evaluations (and DDPM ancestral at the full T
   with --ddpm-samples images); seconds per image, FID and KID against the test set with genlab's own Fashion-MNIST
   feature network; samples saved as .npz beside the run.
3. diffusers (optional: `pip install diffusers`; torchvision is not needed): UNet2DModel with blocks 32/64/64 (1.06 M
   parameters, one attention block in the middle), DDPMScheduler (1000 steps, linear betas), AdamW lr 1e-3, batch 128,
   images padded to 32x32, trained for --diffusers-budget seconds in its own process; DPM-Solver++ at 20 steps; same metrics.

    python bench/diffusion_fmnist.py                                   # 600 s budgets, 2,000 samples per row
    python bench/diffusion_fmnist.py --reuse runs/ddpm_fmnist --n-samples 500 --diffusers-budget 300
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
from _common import in_process

ROOT = Path(__file__).resolve().parents[1]
PRESET = "configs/diffusion/ddpm_fmnist.toml"
RESULTS = ROOT / "bench" / "results"


def quality(samples: torch.Tensor) -> dict:
    """FID and KID of samples (N, 1, 28, 28) in [-1, 1] against the Fashion-MNIST test split, genlab's feature network."""
    from genlab.metrics import kid
    from genlab.metrics.feature_nets import extract_features, get_feature_net, reference_stats
    from genlab.metrics.fid import fid_from_stats

    net = get_feature_net("fashion_mnist")
    ref = reference_stats("fashion_mnist", "test", "fashion_mnist")
    feats = extract_features(net, samples)
    k_mean, _ = kid(ref["features"], feats, subset_size=min(1000, len(feats)))
    return {"fid": fid_from_stats(feats, ref["mu"], ref["sigma"]), "kid": k_mean}


def _save_npz(x: torch.Tensor, path: Path) -> None:
    from genlab.data.transforms import from_unit_range

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=from_unit_range(x).numpy())


# ------------------------------------------------------------------------------------------------ genlab
def train_genlab(budget: float, threads: int, run_dir: str, queue: mp.Queue) -> None:
    import genlab

    torch.set_num_threads(threads)
    res = genlab.train(
        ROOT / PRESET, [f"train.max_time={budget}", f"train.num_threads={threads}", "train.progress=false"], run_dir=run_dir, resume="never"
    )
    queue.put({"steps": res.step, "seconds": res.elapsed})


def training_cost(model, batch_size: int, threads: int, profile_steps: int = 5) -> dict:
    """GFLOP per training image (forward + backward) and the top operators of a profiled training step."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    model = model.train()
    x = torch.rand(batch_size, 1, 28, 28) * 2 - 1
    with FlopCounterMode(display=False) as fc:
        model.loss({"x": x})["loss"].backward()
    gflop = fc.get_total_flops() / batch_size / 1e9
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        model.loss({"x": x})["loss"].backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(profile_steps):
            step()
    seconds = (time.perf_counter() - t0) / profile_steps
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    rows = [{"op": e.key, "share": e.self_cpu_time_total / total} for e in top]
    return {"gflop_per_image": gflop, "profiled_images_per_s": batch_size / seconds, "profile_top_ops": rows}


def genlab_sampling(run_dir: Path, n: int, nfes: list[int], ddpm_n: int, threads: int, out_dir: Path) -> list[dict]:
    import genlab

    torch.set_num_threads(threads)
    model = genlab.load(run_dir)
    rows = []
    plan = [(s, k) for s in ("ddim", "euler", "heun", "dpmpp_2m") for k in nfes]
    plan.append(("ddpm", model.num_timesteps))
    for name, nfe in plan:
        count = ddpm_n if name == "ddpm" else n
        if count == 0:
            continue
        t0 = time.perf_counter()
        x, _ = genlab.sample(model, count, seed=0, sampler=name, steps=nfe)
        sec = (time.perf_counter() - t0) / count
        real_nfe = 2 * ((nfe + 1) // 2) - 1 if name == "heun" else nfe
        row = {"sampler": name, "nfe": real_nfe, "n": count, "seconds_per_image": sec, **quality(x)}
        _save_npz(x, out_dir / f"{name}_{nfe}.npz")
        rows.append(row)
        print(
            f"  {name:<9} NFE {real_nfe:>4}  {count:>5} images  {sec:.4f} s/image  FID {row['fid']:.2f}  KID {row['kid']:.4f}", flush=True
        )
    return rows


# ---------------------------------------------------------------------------------------------- diffusers
def diffusers_recipe(budget: float, threads: int, n: int, out: str, queue: mp.Queue) -> None:
    """diffusers' usual small recipe, trained for `budget` seconds; samples with DPM-Solver++ at 20 steps."""
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel

    from genlab.config import DataConfig
    from genlab.data import load_dataset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ds, _ = load_dataset(DataConfig(name="fashion_mnist", dequantize=False), "train")
    x_all = ds.x  # uint8 (N, 1, 28, 28)
    unet = UNet2DModel(
        sample_size=32,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
    )
    params = sum(p.numel() for p in unet.parameters())
    sched = DDPMScheduler(num_train_timesteps=1000)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    B, steps, g = 128, 0, torch.Generator().manual_seed(0)
    from torch.utils.flop_counter import FlopCounterMode

    def batch():
        idx = torch.randint(len(x_all), (B,), generator=g)
        x = x_all[idx].float() / 127.5 - 1
        return torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)

    def loss_of(x):
        noise = torch.randn_like(x)
        t = torch.randint(0, 1000, (len(x),))
        return torch.nn.functional.mse_loss(unet(sched.add_noise(x, noise, t), t).sample, noise)

    with FlopCounterMode(display=False) as fc:
        loss_of(batch()).backward()
    gflop = fc.get_total_flops() / B / 1e9
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        loss = loss_of(batch())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    seconds = time.perf_counter() - t0
    unet.eval()
    solver = DPMSolverMultistepScheduler(num_train_timesteps=1000, algorithm_type="dpmsolver++", solver_order=2)
    solver.set_timesteps(20)
    gen = torch.Generator().manual_seed(0)
    outs, t1 = [], time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, 250):
            x = torch.randn((min(250, n - start), 1, 32, 32), generator=gen)
            solver.set_timesteps(20)
            for t in solver.timesteps:
                x = solver.step(unet(x, t).sample, t, x).prev_sample
            outs.append(x[:, :, 2:30, 2:30].clamp(-1, 1))
    sec = (time.perf_counter() - t1) / n
    samples = torch.cat(outs)
    torch.save(samples, out)
    queue.put(
        {
            "params": params,
            "steps": steps,
            "seconds": seconds,
            "images_per_s": steps * B / seconds,
            "gflop_per_image": gflop,
            "seconds_per_image": sec,
            "final_loss": float(loss),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=600, help="genlab training seconds (default 600)")
    ap.add_argument("--reuse", default=None, help="a finished run of the preset to reuse instead of training")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=2000, help="images per sampler row (default 2000)")
    ap.add_argument("--nfe", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--ddpm-samples", type=int, default=2000, help="images for DDPM at the full T (0 skips; default 2000)")
    ap.add_argument("--diffusers-budget", type=float, default=600, help="seconds for the diffusers recipe (0 skips)")
    ap.add_argument("--out", default=str(RESULTS / "diffusion_fmnist.json"))
    a = ap.parse_args()

    import genlab
    from genlab.modalities.image import save_image_grid
    from genlab.train.curves import read_metrics

    result: dict = {"machine": "2-core CPU, torch " + torch.__version__, "threads": a.threads, "preset": PRESET}
    if a.reuse:
        run_dir = Path(a.reuse)
        result["genlab_training"] = "reused " + str(run_dir)
    else:
        run_dir = RESULTS / "runs" / f"diffusion_fmnist_{int(a.budget)}s_{time.strftime('%Y%m%d-%H%M%S')}"
        in_process(train_genlab, a.budget, a.threads, str(run_dir))
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "loss" in r]
    cfg = genlab.build_run_config(run_dir / "config.toml")
    steps, seconds = rows[-1]["step"], rows[-1]["time"]
    model = genlab.load(run_dir)
    cost = training_cost(genlab.load(run_dir, ema=False), cfg.train.batch_size, a.threads)
    result["genlab"] = {
        "params": sum(p.numel() for p in model.parameters()),
        "budget_s": cfg.train.max_time,
        "steps": steps,
        "seconds": seconds,
        "batch_size": cfg.train.batch_size,
        "images_per_s": steps * cfg.train.batch_size / seconds,
        # The machine is shared: the median of the logged windows is the step's own speed, the mean includes stalls.
        "images_per_s_median": float(np.median([r["images_per_s"] for r in rows])),
        **cost,
    }
    g = result["genlab"]
    print(
        f"genlab {PRESET}: {g['params'] / 1e6:.2f} M parameters, {steps} steps in {seconds:.0f} s, {g['images_per_s']:.0f} images/s, "
        f"{g['gflop_per_image']:.3f} GFLOP per training image"
    )
    print("  profile of the training step (self CPU time):")
    for r in cost["profile_top_ops"][:8]:
        print(f"    {r['share']:6.1%}  {r['op']}")
    print(f"sampling ({a.n_samples} images per row, DDPM at T with {a.ddpm_samples}):", flush=True)
    result["samplers"] = genlab_sampling(run_dir, a.n_samples, a.nfe, a.ddpm_samples, a.threads, run_dir / "bench_samples")
    x, _ = genlab.sample(model, 64, seed=0, sampler="dpmpp_2m", steps=20)
    save_image_grid(x, RESULTS / "diffusion_genlab_samples.png", nrow=8, scale=2)

    if a.diffusers_budget > 0:
        try:
            import diffusers  # noqa: F401
        except ImportError:
            print("diffusers is not installed (pip install diffusers): skipping the comparison")
        else:
            out = str(run_dir / "diffusers_samples.pt")
            d = in_process(diffusers_recipe, a.diffusers_budget, a.threads, a.n_samples, out)
            samples = torch.load(out, weights_only=True)
            d.update(quality(samples))
            d["n"] = len(samples)
            result["diffusers"] = d
            save_image_grid(samples[:64], RESULTS / "diffusion_diffusers_samples.png", nrow=8, scale=2)
            print(
                f"diffusers UNet2DModel {d['params'] / 1e6:.2f} M: {d['steps']} steps in {d['seconds']:.0f} s, {d['images_per_s']:.0f} "
                f"images/s, {d['gflop_per_image']:.3f} GFLOP per training image; DPM-Solver++ 20 steps: FID {d['fid']:.2f}, "
                f"KID {d['kid']:.4f}, {d['seconds_per_image']:.4f} s/image"
            )

    print("\n| sampler | NFE | images | s / image | FID | KID |\n| --- | --- | --- | --- | --- | --- |")
    for r in result["samplers"]:
        print(f"| {r['sampler']} | {r['nfe']} | {r['n']} | {r['seconds_per_image']:.4f} | {r['fid']:.2f} | {r['kid']:.4f} |")
    if "diffusers" in result:
        d = result["diffusers"]
        print(f"| diffusers dpmsolver++ | 20 | {d['n']} | {d['seconds_per_image']:.4f} | {d['fid']:.2f} | {d['kid']:.4f} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
