"""Benchmark: video prediction and generation on Moving MNIST / Moving Fashion-MNIST at a fixed CPU budget.

Each model trains for the same wall-clock budget (default 30 minutes, 2 threads) on each dataset with its own loop
(AdamW, warm-up then cosine in time, grad clip 1.0: the preset's optimiser settings, no EMA; a two-stage model's phases
start at their fractions of the budget), then predicts the future frames of the first --n-test clips of the fixed test
set (a frame strip and GIF of four of them, truth above prediction, go to --strips). Models: SimVP `video_predictor`
and ConvLSTM `convlstm` (deterministic), space-time diffusion `video_diffusion` (given frames as conditioning, sampled
with its preset's sampler) and the token model `video_gpt` (continuing the given frames' codes). Reported beside them:
copying the last given frame (the zero-motion baseline). The generative models are also scored on whole clips they
generate from nothing (rows "<model> (generation)": frame FID, identity consistency, physics trajectory error).

Two protocols: the CPU variant (`moving_mnist_cpu`, `moving_fmnist_cpu`: 32 x 32, one object, 8 -> 8 frames; the
`*_cpu.toml` presets) and the standard one (`moving_mnist`, `moving_fmnist`: 64 x 64, two objects, 10 -> 10; the
`*_moving_mnist_30min.toml` presets, sized for 30 CPU-minutes), where OpenSTL's published table (200 GPU epochs) is
printed beside the rows and the issue's targets are checked: the generative predictors' MSE within 1.3x of the
deterministic baseline's (SimVP, same budget) with frame FID at most half of its, identity consistency >= 0.9.
Metrics as in eval.json (genlab.metrics.video, OpenSTL's conventions) plus frame FID, fd_clip (where genlab ships a
clip network for the data), identity consistency / coverage / accuracy and trajectory error from the video modality.

    flock /tmp/genlab-heavy.lock .venv/bin/python bench/video.py                                  # CPU variants, 30 min a model
    flock /tmp/genlab-heavy.lock .venv/bin/python bench/video.py --datasets moving_mnist \
        --models simvp videogpt vdm --n-test 500 --n-test-slow 500 --out bench/results/video_standard.json
    .venv/bin/python bench/video.py --budget 30 --n-test 200 --threads 1                          # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {  # model -> protocol -> preset; a preset serves both datasets of its protocol (data.name is overridden)
    "simvp": {"cpu": "configs/video/simvp_moving_mnist_cpu.toml", "standard": "configs/video/simvp_moving_mnist_30min.toml"},
    "convlstm": {"cpu": "configs/video/convlstm_moving_mnist_cpu.toml"},
    "vdm": {"cpu": "configs/video/vdm_moving_mnist_cpu.toml", "standard": "configs/video/vdm_moving_mnist_30min.toml"},
    "videogpt": {"cpu": "configs/video/videogpt_moving_mnist_cpu.toml", "standard": "configs/video/videogpt_moving_mnist_30min.toml"},
}
DATASETS = {"moving_mnist_cpu": "cpu", "moving_fmnist_cpu": "cpu", "moving_mnist": "standard", "moving_fmnist": "standard"}
BASELINE = "simvp"  # the deterministic predictor the targets compare with
GENERATIVE = ("vdm", "videogpt")
TARGETS = {"mse_ratio": 1.3, "frame_fid_ratio": 0.5, "identity_consistency": 0.9}
# OpenSTL (Tan et al. 2023), 10 -> 10 frames at 64 x 64 with two objects after 200 epochs: (MSE, SSIM).
OPENSTL = {
    "moving_mnist": {"ConvLSTM": (29.80, 0.929), "PredRNN": (23.97, 0.946), "SimVP": (26.69, 0.940), "TAU": (24.60, 0.945)},
    "moving_fmnist": {"ConvLSTM": (28.87, 0.879), "PredRNN": (22.01, 0.909)},
}
SLOW = ("vdm", "videogpt")  # predictors that sample (20 network passes, or 128 tokens, per clip): scored on --n-test-slow clips
SHOWN = (
    "mse",
    "mae",
    "ssim",
    "psnr",
    "frame_fid",
    "fd_clip",
    "identity_consistency",
    "identity_coverage",
    "identity_accuracy",
    "trajectory_error",
)


class Generation(torch.nn.Module):
    """A generative predictor seen as a generator of whole clips: `sample` without given frames, no `context` option,
    so the modality scores its clips as generated ones."""

    context_frames = 0

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.spec, self.conditional, self.family = model.spec, model.conditional, model.family

    @property
    def device(self):
        return self.model.device

    def sample_options(self):
        return tuple(o for o in self.model.sample_options() if o.name != "context")

    def sample(self, n, *, labels=None, generator=None, **kwargs):
        return self.model.sample(n, labels=labels, generator=generator, **kwargs)


class CopyLast(torch.nn.Module):
    """The zero-motion baseline: every future frame is the last given frame."""

    def __init__(self, spec, context_frames):
        super().__init__()
        self.spec, self.context_frames = spec, context_frames

    @staticmethod
    def sample_options():
        from genlab.models.base import SampleOption

        return (SampleOption("context", str),)

    def sample(self, n, *, labels=None, generator=None, context=None):
        ctx = context[:n, : self.context_frames]
        return torch.cat([ctx, ctx[:, -1:].expand(n, self.spec.shape[0] - self.context_frames, *ctx.shape[2:])], 1)


def train(cfg, budget: float, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    from genlab.data.base import Loader, load_dataset
    from genlab.models import build_model

    ds, transform = load_dataset(cfg.data, "train")
    torch.manual_seed(seed)
    model = build_model(cfg.model, transform.spec)
    tc = cfg.train
    phases = model.phases()  # one AdamW per phase, each from its start fraction of the budget (a two-stage model's prior)
    opts = [torch.optim.AdamW(list(ph.params), lr=tc.lr, betas=ph.betas or tc.betas, weight_decay=tc.weight_decay) for ph in phases]
    loader = Loader(ds, transform, tc.batch_size, seed=seed)
    step, t0, losses = 0, time.perf_counter(), []
    while (elapsed := time.perf_counter() - t0) < budget:
        frac = elapsed / budget
        lr = tc.lr * min(1.0, (step + 1) / max(1, tc.warmup_steps))
        lr *= tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac))
        for ph, opt in zip(phases, opts):
            if frac < ph.start_fraction:
                continue
            for _ in range(ph.steps):
                for group in opt.param_groups:
                    group["lr"] = lr * ph.lr_scale
                loss = model.loss(next(loader), phase=ph.name if len(phases) > 1 else None)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], tc.grad_clip or math.inf)
                opt.step()
        losses.append(loss.item())
        step += 1
    seconds = time.perf_counter() - t0
    tail = losses[-50:]
    return model.eval(), {
        "steps": step,
        "seconds": seconds,
        "clips_per_s": step * tc.batch_size / seconds,
        "final_loss": sum(tail) / len(tail),
    }


def save_run(model, cfg, steps: int, run_dir: Path) -> None:
    """The trained model as a genlab run directory (config.toml, model.safetensors), so that `genlab eval`, `genlab sample`
    and `genlab report` read it like a trained run."""
    from genlab import checkpoint as ckpt

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_text(run_dir / ckpt.CONFIG, cfg.to_toml())
    ckpt.save_weights(run_dir / ckpt.WEIGHTS, model, ckpt.run_metadata(cfg, model.spec, steps))


def load_saved(run_dir: Path) -> tuple[torch.nn.Module, dict]:
    """A model that --save kept, with the steps it trained (from its weights' header), to be scored again."""
    import genlab
    from genlab import checkpoint as ckpt

    if not (run_dir / ckpt.WEIGHTS).is_file():
        raise SystemExit(f"--from-runs: {run_dir} holds no {ckpt.WEIGHTS}; train it with --save first")
    model = genlab.load(run_dir)  # in eval mode, with the steps it trained in model.run
    return model, {"steps": model.run.steps, "from_run": str(run_dir)}


def evaluate(model, cfg, test) -> dict:
    from genlab.modalities.video import VideoModality

    with torch.no_grad():
        numbers, _ = VideoModality().sample_metrics(model, cfg, test)
    return {k: numbers[k] for k in (*SHOWN, "mse_per_frame", "seconds_per_clip") if k in numbers}


def targets(rows: list[dict], dataset: str) -> list[dict]:
    """The issue's targets for each generative predictor on `dataset` against the deterministic baseline's row."""
    base = next((r for r in rows if r["dataset"] == dataset and r["model"] == BASELINE), None)
    out = []
    for r in rows:
        if r["dataset"] != dataset or r["model"] not in GENERATIVE or base is None:
            continue
        gen = next((g for g in rows if g["dataset"] == dataset and g["model"] == f"{r['model']} (generation)"), {})
        t = {
            "dataset": dataset,
            "model": r["model"],
            "mse_ratio": r["mse"] / base["mse"],
            "frame_fid_ratio": r["frame_fid"] / base["frame_fid"] if "frame_fid" in r else math.nan,
            "identity_consistency_prediction": r.get("identity_consistency", math.nan),
            "identity_consistency_generation": gen.get("identity_consistency", math.nan),
        }
        t["met"] = {
            "mse_ratio": t["mse_ratio"] <= TARGETS["mse_ratio"],
            "frame_fid_ratio": t["frame_fid_ratio"] <= TARGETS["frame_fid_ratio"],
            "identity_consistency": min(t["identity_consistency_prediction"], t["identity_consistency_generation"])
            >= TARGETS["identity_consistency"],
        }
        out.append(t)
    return out


def strip(model, cfg, test, path: Path, n: int = 4) -> Path:
    """A frame strip (.png, and the same as a .gif beside it): the first n test clips (given + true future frames) in the
    top rows, the model's predictions of them (given + predicted) in the rows below."""
    from genlab.data.transforms import to_unit_range
    from genlab.modalities.video import VideoModality, predict_clips

    true = to_unit_range(test.x[:n])
    with torch.no_grad():
        made = predict_clips(model, true, labels=None if test.y is None else test.y[:n], seed=cfg.eval.seed)
    return VideoModality().preview(torch.cat([true, made]), path, spec=model.spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=1800, help="training seconds per model and dataset")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-test", type=int, default=1000, help="test clips scored (a prefix of the fixed test set)")
    p.add_argument("--datasets", nargs="+", default=["moving_mnist_cpu", "moving_fmnist_cpu"], choices=list(DATASETS))
    p.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--n-test-slow", type=int, default=200, help="test clips for the sampled (generative) models, at most --n-test")
    p.add_argument("--no-generation", action="store_true", help="score the generative models on prediction only")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "video.json"))
    p.add_argument("--strips", default=str(ROOT / "bench" / "results" / "video"), help="folder for each model's frame strip and GIF")
    p.add_argument("--append", action="store_true", help="keep the rows already in --out (a protocol's models run in several calls)")
    p.add_argument("--save", default=None, help="folder: keep each trained model as a run directory SAVE/<dataset>/<model>")
    p.add_argument(
        "--from-runs", default=None, help="folder that --save filled: score those models again instead of training (a metric changed)"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from genlab.config import build_run_config
    from genlab.data.base import load_dataset

    print(f"video prediction, {a.budget:g} s of training per model and dataset, {a.threads} threads, {a.n_test} test clips")
    print(f"{'dataset':<19}{'model':<24}{'steps':>6}" + "".join(f"{k[:12]:>13}" for k in SHOWN), flush=True)
    old = json.loads(Path(a.out).read_text()) if a.append and Path(a.out).is_file() else {}
    results: list[dict] = old.get("results", [])
    checks: list[dict] = [t for t in old.get("targets", []) if t["dataset"] not in a.datasets]

    def preset(who: str, protocol: str, name: str, n_test: int):
        return build_run_config(ROOT / PRESETS[who][protocol], [f"data.name={name}", f"eval.n_samples={n_test}", f"data.n_test={n_test}"])

    def save() -> None:
        out = {
            "budget_s": a.budget,
            "threads": a.threads,
            "n_test": a.n_test,
            "torch": torch.__version__,
            "results": results,
            "targets": checks,
            "openstl": {d: OPENSTL[d] for d in a.datasets if d in OPENSTL},
        }
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")

    def record(row: dict) -> None:
        """Print the row and rewrite the JSON at once, so that a long run keeps what it has measured."""
        results.append(row)
        print(
            f"{row['dataset']:<19}{row['model']:<24}{row.get('steps', '-'):>6}"
            + "".join(f"{row.get(k, float('nan')):>13.4g}" for k in SHOWN),
            flush=True,
        )
        save()

    for name in a.datasets:
        protocol, model = DATASETS[name], None
        for who in a.models:
            if protocol not in PRESETS[who]:
                print(f"{name:<19}{who:<24} (no {protocol}-protocol preset: skipped)", flush=True)
                continue
            n_test = a.n_test if who not in SLOW or a.n_test_slow is None else min(a.n_test, a.n_test_slow)
            cfg = preset(who, protocol, name, n_test)
            test, _ = load_dataset(cfg.data, "test")
            model, info = load_saved(Path(a.from_runs) / name / who) if a.from_runs else train(cfg, a.budget)
            if a.save and not a.from_runs:
                save_run(model, cfg, info["steps"], Path(a.save) / name / who)
            record({"dataset": name, "model": who, "n_test": n_test, **info, **evaluate(model, cfg, test)})
            strip(model, cfg, test, Path(a.strips) / f"{name}_{who}.png")
            if who in GENERATIVE and not a.no_generation:
                gen = Generation(model)
                record({"dataset": name, "model": f"{who} (generation)", "n_test": n_test, **evaluate(gen, cfg, test)})
                with torch.no_grad():
                    made = gen.sample(8, generator=torch.Generator().manual_seed(cfg.eval.seed))
                from genlab.modalities.video import VideoModality

                VideoModality().preview(made, Path(a.strips) / f"{name}_{who}_generation.png", spec=model.spec)
        if model is not None and not any(r["dataset"] == name and r["model"] == "copy_last_frame" for r in results):
            cfg = preset(BASELINE, protocol, name, a.n_test)
            test, _ = load_dataset(cfg.data, "test")
            record(
                {
                    "dataset": name,
                    "model": "copy_last_frame",
                    "n_test": a.n_test,
                    **evaluate(CopyLast(model.spec, model.context_frames), cfg, test),
                }
            )
        for label, (mse, ssim) in OPENSTL.get(name, {}).items():
            print(f"{name:<19}{'OpenSTL ' + label:<24}{'200ep':>6}{mse:>13.4g}{'':>13}{ssim:>13.4g}", flush=True)
        checks.extend(targets(results, name))
        for t in checks:
            if t["dataset"] == name:
                print(
                    f"targets {t['model']}: MSE {t['mse_ratio']:.2f}x the baseline's (<= {TARGETS['mse_ratio']}), frame FID "
                    f"{t['frame_fid_ratio']:.2f}x (<= {TARGETS['frame_fid_ratio']}), identity consistency "
                    f"{t['identity_consistency_prediction']:.3f} predicted / {t['identity_consistency_generation']:.3f} generated "
                    f"(>= {TARGETS['identity_consistency']}); met: {t['met']}",
                    flush=True,
                )
        save()
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
