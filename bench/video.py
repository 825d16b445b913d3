"""Benchmark: video prediction on Moving MNIST / Moving Fashion-MNIST (CPU size) at a fixed CPU budget.

Each predictor (SimVP `video_predictor`, ConvLSTM `convlstm`, space-time diffusion `video_diffusion` with 8 given
frames, sampled with its preset's sampler, and the token model `video_gpt` continuing the 8 given frames' codes; their
presets' settings, no EMA; a two-stage model's phases start at their fractions of the budget) trains for the same wall-clock budget on
each dataset with its own loop (AdamW, warm-up then cosine in time, grad clip 1.0: the preset's optimiser settings),
then predicts the future frames of the first --n-test clips of the fixed test set (a frame strip and GIF of four of them,
truth above prediction, go to --strips). Reported beside them: copying the
last given frame (the zero-motion baseline). Metrics as in eval.json (genlab.metrics.video, OpenSTL's conventions)
plus frame FID, identity consistency / accuracy and trajectory error from the video modality. OpenSTL's published
numbers are for the 64 x 64, 2-object, 10 -> 10 protocol after 200 epochs on a GPU and are not comparable with these
CPU-size runs.

    flock /tmp/genlab-heavy.lock .venv/bin/python bench/video.py                      # 300 s per model and dataset, 2 threads
    .venv/bin/python bench/video.py --budget 30 --n-test 200 --threads 1              # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {  # (model, dataset) -> preset; a model's preset for the other dataset is the same file with data.name changed
    "simvp": "configs/video/simvp_moving_mnist_cpu.toml",
    "convlstm": "configs/video/convlstm_moving_mnist_cpu.toml",
    "vdm": "configs/video/vdm_moving_mnist_cpu.toml",
    "videogpt": "configs/video/videogpt_moving_mnist_cpu.toml",
}
DATASETS = ("moving_mnist_cpu", "moving_fmnist_cpu")
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


def evaluate(model, cfg, test) -> dict:
    from genlab.modalities.video import VideoModality

    with torch.no_grad():
        numbers, _ = VideoModality().sample_metrics(model, cfg, test)
    return {k: numbers[k] for k in (*SHOWN, "mse_per_frame", "seconds_per_clip") if k in numbers}


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
    p.add_argument("--budget", type=float, default=300, help="training seconds per model and dataset")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-test", type=int, default=1000, help="test clips scored (a prefix of the fixed test set)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--models", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--n-test-slow", type=int, default=200, help="test clips for the sampled (diffusion) models, at most --n-test")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "video.json"))
    p.add_argument("--strips", default=str(ROOT / "bench" / "results" / "video"), help="folder for each model's frame strip and GIF")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from genlab.config import build_run_config
    from genlab.data.base import load_dataset

    print(f"video prediction, {a.budget:g} s of training per model and dataset, {a.threads} threads, {a.n_test} test clips")
    print(f"{'dataset':<19}{'model':<17}{'steps':>6}" + "".join(f"{k[:12]:>13}" for k in SHOWN), flush=True)
    results: list[dict] = []

    def record(row: dict) -> None:
        """Print the row and rewrite the JSON at once, so that a long run keeps what it has measured."""
        results.append(row)
        print(
            f"{row['dataset']:<19}{row['model']:<17}{row.get('steps', '-'):>6}"
            + "".join(f"{row.get(k, float('nan')):>13.4g}" for k in SHOWN),
            flush=True,
        )
        out = {"budget_s": a.budget, "threads": a.threads, "n_test": a.n_test, "torch": torch.__version__, "results": results}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")

    for name in a.datasets:
        for who in a.models:
            n_test = a.n_test if who not in SLOW or a.n_test_slow is None else min(a.n_test, a.n_test_slow)
            cfg = build_run_config(ROOT / PRESETS[who], [f"data.name={name}", f"eval.n_samples={n_test}", f"data.n_test={n_test}"])
            test, _ = load_dataset(cfg.data, "test")
            model, info = train(cfg, a.budget)
            record({"dataset": name, "model": who, "n_test": n_test, **info, **evaluate(model, cfg, test)})
            strip(model, cfg, test, Path(a.strips) / f"{name}_{who}.png")
        cfg = build_run_config(ROOT / PRESETS[a.models[0]], [f"data.name={name}", f"eval.n_samples={a.n_test}", f"data.n_test={a.n_test}"])
        test, _ = load_dataset(cfg.data, "test")
        record(
            {
                "dataset": name,
                "model": "copy_last_frame",
                "n_test": a.n_test,
                **evaluate(CopyLast(model.spec, model.context_frames), cfg, test),
            }
        )
    print(f"-> {a.out}")


if __name__ == "__main__":
    main()
