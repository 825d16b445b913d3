"""The one trainer: every family through the GenerativeModel contract (phases, loss, sample).

AdamW with warm-up then cosine or constant learning rate, gradient clipping and accumulation,
EMA, bf16 autocast, budgets in steps or seconds, atomic checkpoints with exact resume, Ctrl-C
saves and exits, a non-finite loss stops the run with the last good checkpoint kept, and
DistributedDataParallel under torchrun.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import signal
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from genlab import checkpoint as ckpt
from genlab.config import RunConfig
from genlab.data import Loader, iterate, load_dataset
from genlab.errors import CheckpointError, ConfigError, StorageError, TrainingError
from genlab.metrics.likelihood import bits_per_dim, per_example_nll
from genlab.modalities import modality_of
from genlab.modalities.image import save_image_grid
from genlab.models import GenerativeModel, RunContext, build_model
from genlab.train import distributed as D
from genlab.train import rundir
from genlab.train.curves import plot_curves
from genlab.train.ema import EMA
from genlab.train.logging import Logger, make_loggers

CURVES_EVERY = 30.0  # seconds between redraws of loss.png while training (matplotlib costs ~0.2 s a picture)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    elapsed: float
    status: Literal["done", "interrupted", "already done"]
    model: GenerativeModel


def resolve_device(name: str, info: D.DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and info is not None and info.enabled:
        name = f"cuda:{info.local_rank}"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"train.device={name!r} but CUDA is not available here; use train.device=cpu or auto")
    return dev


class _LossModule(nn.Module):
    """Lets DistributedDataParallel see `model.loss` as its forward."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], phase: str | None) -> dict[str, torch.Tensor]:
        return self.model.loss(batch, phase=phase)


class _StopSignal:
    """First Ctrl-C / SIGTERM asks the loop to save and stop at the next step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    """Train `cfg` into `run_dir`; `resume` is "auto" (resume a matching run), "always" or "never"."""

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike, *, resume: Literal["auto", "always", "never"] = "auto"):
        self.cfg, self.tc = cfg, cfg.train
        self.run_dir = Path(run_dir)
        self.dist = D.init_from_env(
            "cuda" if "cuda" in self.tc.device or (self.tc.device == "auto" and torch.cuda.is_available()) else "cpu"
        )
        self.device = resolve_device(self.tc.device, self.dist)
        if self.device.type == "cpu":
            torch.set_num_threads(self.tc.num_threads or max(1, D.available_cores() // self.dist.world_size))
            torch.set_flush_denormal(self.tc.flush_denormal)
        self.resuming = rundir.prepare(self.run_dir, cfg, resume) if self.dist.is_main else False
        if self.dist.enabled:
            self.resuming = D.any_rank(self.resuming, self.dist, self.device)

        # Data first: a missing dataset fails before a model is built.
        self.train_ds, self.transform = load_dataset(cfg.data, "train")
        self.test_ds, self.test_transform = load_dataset(cfg.data, "test")
        self.spec = self.transform.spec
        if (self.tc.batch_size // self.dist.world_size) % self.tc.grad_accum:
            raise ConfigError(
                f"train.batch_size={self.tc.batch_size} over {self.dist.world_size} processes "
                f"is not divisible by train.grad_accum={self.tc.grad_accum}"
            )
        self.loader = Loader(
            self.train_ds, self.transform, self.tc.batch_size, seed=self.tc.seed, rank=self.dist.rank, world_size=self.dist.world_size
        )

        torch.manual_seed(self.tc.seed)
        self.model = build_model(cfg.model, self.spec, cfg).to(self.device)
        self.phases = self.model.phases()
        self.opts = [self._optimizer(ph) for ph in self.phases]
        self.ema = EMA(self.model, self.tc.ema_decay, self.tc.ema_warmup) if self.tc.ema_decay > 0 else None
        self.net: nn.Module = _LossModule(self.model)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(
                self.net,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=len(self.phases) > 1,
            )
        self.autocast = self._autocast()
        self.step, self.elapsed, self.last_ckpt_step = 0, 0.0, None
        self.logs: dict[str, torch.Tensor] = {}  # sums since the last metrics line (saved for exact resume)
        self.loggers: list[Logger] = []  # TensorBoard / W&B / MLflow beside metrics.jsonl (rank 0, while fitting)
        self._t_curves = time.perf_counter()
        self.n_log = 0
        torch.manual_seed(self.tc.seed + 1 + self.dist.rank)  # per-rank noise stream for the losses
        if self.resuming:
            self._restore()

    # ----------------------------------------------------------------- set-up
    def _optimizer(self, ph: Any) -> torch.optim.Optimizer:
        params = [p for p in ph.params if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": self.tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        lr = self.tc.lr * ph.lr_scale
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=ph.betas or self.tc.betas, foreach=True)
        for g in opt.param_groups:
            g["base_lr"] = lr
        return opt

    def _autocast(self) -> Any:
        p = self.tc.precision
        if p == "auto":
            p = "bf16" if self.device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
        if p == "bf16":
            return lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext

    def budget_spent(self, offset: int = 0) -> float:
        """Fraction of the budget (steps or time, whichever is further) spent, in [0, 1]."""
        tc = self.tc
        progress = 0.0
        if tc.max_steps:
            progress = max(progress, (self.step - offset) / max(1, tc.max_steps - offset))
        if tc.max_time:
            progress = max(progress, self.elapsed / tc.max_time)
        return min(1.0, max(0.0, progress))

    def lr_factor(self) -> float:
        """Linear warm-up, then cosine to min_lr_ratio (or constant) over the budget's progress."""
        tc = self.tc
        if tc.warmup_steps and self.step < tc.warmup_steps:
            return (self.step + 1) / tc.warmup_steps
        if tc.schedule == "constant":
            return 1.0
        progress = self.budget_spent(offset=tc.warmup_steps)
        return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def budget_left(self) -> bool:
        tc = self.tc
        if tc.max_steps is not None and self.step >= tc.max_steps:
            return False
        return not (tc.max_time is not None and self.elapsed >= tc.max_time)

    # ------------------------------------------------------------ checkpoints
    def _rng_state(self) -> dict[str, Any]:
        """Every RNG a step may draw from, as tensors and plain values (so that state.pt loads with weights_only=True)."""
        name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        st = {
            "torch": torch.get_rng_state(),
            "numpy": {
                "name": str(name),
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached_gaussian),
            },
            "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        }
        if self.device.type == "cuda":
            st["cuda"] = torch.cuda.get_rng_state(self.device)
        return st

    def _set_rng_state(self, st: dict[str, Any]) -> None:
        n, py = st["numpy"], st["python"]
        torch.set_rng_state(st["torch"])
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
        random.setstate((py["version"], tuple(py["internal"].tolist()), py["gauss_next"]))
        if self.device.type == "cuda" and "cuda" in st:
            torch.cuda.set_rng_state(st["cuda"], self.device)

    def weights_metadata(self) -> dict[str, Any]:
        return ckpt.run_metadata(self.cfg, self.spec, self.step)

    def save(self) -> None:
        """Write weights, EMA and trainer state. state.pt is renamed last and holds everything a resume needs (the
        weights and EMA too), so a crash at any moment leaves one complete checkpoint to resume from."""
        rngs = [self._rng_state()]
        if self.dist.enabled:
            rngs = [None] * self.dist.world_size
            torch.distributed.all_gather_object(rngs, self._rng_state())
        if self.dist.is_main:
            self.check_run_dir()
            meta = self.weights_metadata()
            ckpt.save_weights(self.run_dir / rundir.WEIGHTS, self.model, meta)
            if self.ema is not None:
                ckpt.save_weights(self.run_dir / rundir.EMA_WEIGHTS, self.ema.model, meta)
            ckpt.save_state(
                self.run_dir / rundir.STATE,
                {
                    "step": self.step,
                    "elapsed": self.elapsed,
                    "optimizers": [o.state_dict() for o in self.opts],
                    "loader": self.loader.state_dict(),
                    "ema_updates": self.ema.num_updates if self.ema else 0,
                    "rng": rngs,
                    "world_size": self.dist.world_size,
                    "pending_logs": ({k: float(v) for k, v in self.logs.items()}, self.n_log),
                    "skipped": {"total": self.skipped, "consecutive": self.consecutive_skips},
                    "model": self._cpu_tensors(self.model),
                    "ema": self._cpu_tensors(self.ema.model) if self.ema is not None else None,
                },
            )
        self.last_ckpt_step = self.step
        D.barrier(self.dist)

    def _restore(self) -> None:
        path = self.run_dir / rundir.STATE
        state = self._read_state(path)
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.model.load_state_dict(state["ema"])
            self.ema.num_updates = state["ema_updates"]
        for i, (opt, sd) in enumerate(zip(self.opts, state["optimizers"])):
            try:
                opt.load_state_dict(sd)
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise CheckpointError(f"{path}: optimizers[{i}] does not fit this model's optimiser ({e})") from None
            params = [p for g in opt.param_groups for p in g["params"]]
            for p in params:
                for k, v in opt.state.get(p, {}).items():
                    if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                        raise CheckpointError(
                            f"{path}: optimizers[{i}] holds {k} of shape {tuple(v.shape)} for a parameter of shape {tuple(p.shape)}"
                        )
        self.loader.load_state_dict(state["loader"])
        self.step, self.elapsed, self.last_ckpt_step = state["step"], float(state["elapsed"]), state["step"]
        logs, self.n_log = state["pending_logs"]
        self.logs = {k: torch.tensor(float(v), device=self.device) for k, v in logs.items()}
        self.skipped, self.consecutive_skips = state["skipped"]["total"], state["skipped"]["consecutive"]
        if state["world_size"] == self.dist.world_size:
            try:
                self._set_rng_state(state["rng"][self.dist.rank])
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
                raise CheckpointError(f"{path}: field 'rng' of the trainer state is damaged ({e!r}); start a new run directory") from None
        if self.dist.is_main:
            self._sync_weights_files()
            self._truncate_metrics()

    @staticmethod
    def _cpu_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

    def _sync_weights_files(self) -> None:
        """A crash between writing the weights files and state.pt leaves weights of a later step (or a file cut short):
        rewrite them from the restored model, so that the run directory agrees with itself again."""
        files = [(rundir.WEIGHTS, self.model)] + ([(rundir.EMA_WEIGHTS, self.ema.model)] if self.ema is not None else [])
        for name, module in files:
            try:
                current = ckpt.read_metadata(self.run_dir / name).get("step") == str(self.step)
            except CheckpointError:
                current = False
            if not current:
                ckpt.save_weights(self.run_dir / name, module, self.weights_metadata())

    def _read_state(self, path: Path) -> dict[str, Any]:
        """state.pt with every field checked: a damaged or foreign file fails here, naming the field, not deep in a step."""
        state = ckpt.load_state(path)
        count = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
        number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        ckpt.require(state, "step", path, "a step count >= 0", count)
        ckpt.require(state, "elapsed", path, "seconds >= 0", lambda v: number(v) and v >= 0)
        ckpt.require(
            state,
            "optimizers",
            path,
            f"a list of {len(self.opts)} optimiser state dicts (one per phase of this model)",
            lambda v: (
                isinstance(v, list)
                and len(v) == len(self.opts)
                and all(isinstance(o, dict) and isinstance(o.get("state"), dict) and isinstance(o.get("param_groups"), list) for o in v)
            ),
        )
        ckpt.require(
            state,
            "loader",
            path,
            f"{{epoch, pos, served}} counts with pos <= {len(self.train_ds)}",
            lambda v: isinstance(v, dict) and all(count(v.get(k)) for k in ("epoch", "pos", "served")) and v["pos"] <= len(self.train_ds),
        )
        ckpt.require(state, "ema_updates", path, "a count >= 0", count)
        ckpt.require(state, "world_size", path, "a process count >= 1", lambda v: count(v) and v >= 1)
        rng_ok = lambda r: (  # noqa: E731
            isinstance(r, dict)
            and isinstance(r.get("torch"), torch.Tensor)
            and r["torch"].dtype == torch.uint8
            and isinstance(r.get("numpy"), dict)
            and isinstance(r["numpy"].get("keys"), torch.Tensor)
            and isinstance(r.get("python"), dict)
            and isinstance(r["python"].get("internal"), torch.Tensor)
        )
        ckpt.require(
            state,
            "rng",
            path,
            f"one RNG state per process ({state['world_size']})",
            lambda v: isinstance(v, list) and len(v) == state["world_size"] and all(rng_ok(r) for r in v),
        )
        ckpt.require(
            state,
            "pending_logs",
            path,
            "(sums of logged values by name, count of steps since the last log line)",
            lambda v: (
                isinstance(v, (list, tuple))
                and len(v) == 2
                and isinstance(v[0], dict)
                and all(isinstance(k, str) and isinstance(x, float) for k, x in v[0].items())
                and count(v[1])
            ),
        )
        ckpt.require(
            state,
            "skipped",
            path,
            "{total, consecutive} counts of skipped non-finite steps",
            lambda v: isinstance(v, dict) and count(v.get("total")) and count(v.get("consecutive")),
        )

        def fits(module: nn.Module) -> Any:
            own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
            return lambda v: isinstance(v, dict) and {k: tuple(t.shape) for k, t in v.items()} == own

        ckpt.require(state, "model", path, "the tensors of this model (its names and shapes)", fits(self.model))
        if self.ema is not None:
            ckpt.require(state, "ema", path, "the EMA's tensors (the model's names and shapes)", fits(self.ema.model))
        return state

    def _truncate_metrics(self) -> None:
        """Drop log lines written after the checkpoint we resume from: the resumed run rewrites them."""
        path = self.run_dir / rundir.METRICS
        if path.is_file():
            keep = [ln for ln in path.read_text().splitlines() if (row := _json_row(ln)) is not None and row.get("step", 0) <= self.step]
            ckpt.atomic_write_text(path, "".join(ln + "\n" for ln in keep))

    # --------------------------------------------------------------- training
    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # Non-finite steps (train.on_nonfinite): what was at fault in the last step; steps skipped in all and in a row.
    fault: str | None = None
    skipped = 0
    consecutive_skips = 0

    def train_step(self, logs: dict[str, torch.Tensor]) -> bool:
        """One step of every phase, its logged values added to `logs`. False when a loss or gradient is not finite:
        that update is not applied, nothing of the step is logged and `self.fault` names the loss term or parameters
        at fault (updates of earlier phases in the step stand)."""
        factor = self.lr_factor()
        spent = self.budget_spent()
        step_logs: dict[str, torch.Tensor] = {}
        self.fault = None
        buffers = self._float_buffers() if self.tc.on_nonfinite == "skip" else None
        for ph, opt in zip(self.phases, self.opts):
            if ph.start_fraction > spent:
                continue
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            prefix = "" if len(self.phases) == 1 else f"{ph.name}/"
            params = [p for g in opt.param_groups for p in g["params"]]
            for _ in range(ph.steps):
                opt.zero_grad(set_to_none=True)
                full = self._to_device(next(self.loader))
                chunks = {k: v.chunk(self.tc.grad_accum) for k, v in full.items()}
                for micro in range(self.tc.grad_accum):
                    batch = {k: v[micro] for k, v in chunks.items()}
                    sync = self.net.no_sync() if self.dist.enabled and micro < self.tc.grad_accum - 1 else nullcontext()
                    with sync, self.autocast():
                        out = self.net(batch, ph.name)
                    (out["loss"].float() / self.tc.grad_accum).backward()
                    for k, v in out.items():
                        key = prefix + k
                        step_logs[key] = step_logs.get(key, 0.0) + v.detach().float() / self.tc.grad_accum
                gnorm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
                step_logs[prefix + "grad_norm"] = step_logs.get(prefix + "grad_norm", 0.0) + gnorm.detach().float()
                if not (torch.isfinite(step_logs[prefix + "loss"]) and torch.isfinite(gnorm)):
                    self.fault = self._fault(step_logs, prefix, params)
                    if buffers is not None:  # a batch-norm's running statistics must not keep the bad batch
                        for b, saved in buffers:
                            b.copy_(saved)
                    return False
                torch.nn.utils.clip_grads_with_norm_(params, self.tc.grad_clip or float("inf"), gnorm)
                opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.consecutive_skips = 0
        for k, v in step_logs.items():
            logs[k] = logs.get(k, 0.0) + v
        return True

    def _float_buffers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(buffer, copy) for the model's floating-point buffers (running statistics), restored when a step is skipped."""
        return [(b, b.detach().clone()) for b in self.model.buffers() if b.is_floating_point()]

    def _fault(self, step_logs: dict[str, torch.Tensor], prefix: str, params: list[nn.Parameter]) -> str:
        """Which loss terms, else which parameters' gradients, are not finite."""
        terms = [f"{k}={float(v):.4g}" for k, v in step_logs.items() if k.startswith(prefix) and not math.isfinite(float(v))]
        terms = [t for t in terms if not t.startswith(prefix + "grad_norm=")]
        if terms:
            return "loss term " + ", ".join(terms)
        names = {p: n for n, p in self.model.named_parameters()}
        bad = [names.get(p, "?") for p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
        shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
        return f"gradient of {shown or 'the parameters'} (grad_norm={float(step_logs[prefix + 'grad_norm']):.4g})"

    def _fork_rng(self) -> Any:
        """Sampling and pictures draw from a forked RNG, so they never change the training stream."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    @property
    def sampling_model(self) -> GenerativeModel:
        return self.ema.model if self.ema is not None else self.model

    def write_samples(self, name: str) -> Path | None:
        """The data's own preview (a grid, a scatter, a listing ...) of seeded samples, into samples/<name>."""
        if not self.dist.is_main:
            return None
        modality = modality_of(self.spec)
        m = self.sampling_model
        m.eval()
        with self._fork_rng(), torch.no_grad():
            g = torch.Generator().manual_seed(1234)
            n = modality.preview_count(self.tc.n_samples)
            labels = m.sample_labels(n)
            x = modality.preview_samples(m, n, labels=labels, generator=g, reference=self.test_ds)
        m.train()
        path = self.run_dir / rundir.SAMPLES / f"{name}.png"
        self.check_run_dir()
        with ckpt.writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            out = modality.preview(x.cpu(), path, spec=self.spec, labels=labels, reference=self.test_ds)
        if self.loggers and out.suffix == ".png":
            from PIL import Image

            picture = np.asarray(Image.open(out).convert("RGB"))
            for logger in self.loggers:
                logger.image(self.step, "samples", picture)
        return out

    @torch.no_grad()
    def write_figures(self) -> None:
        """The model's own pictures (reconstructions, interpolations) on the first test examples."""
        m = self.sampling_model
        batch = self._to_device(next(iterate(self.test_ds, self.test_transform, 64)))
        m.eval()
        with self._fork_rng():
            figs = m.figures(batch)
        m.train()
        for name, (images, nrow) in figs.items():
            save_image_grid(images.cpu(), self.run_dir / rundir.SAMPLES / f"{name}.png", nrow=nrow, scale=2)

    @torch.no_grad()
    def quick_eval(self) -> dict[str, float]:
        """NLL (or its k=1 bound) on eval.n_batches test batches, under genlab's one convention."""
        m = self.sampling_model
        if m.likelihood == "none":
            return {}
        m.eval()
        limit = self.cfg.eval.n_batches * self.cfg.eval.batch_size
        nll = per_example_nll(m, self.test_ds, self.test_transform, k=1, batch_size=self.cfg.eval.batch_size, limit=limit, progress=False)
        m.train()
        v = nll.mean().item()
        return {"eval/nll": v, "eval/bits_per_dim": float(bits_per_dim(v, self.spec))}

    def _log(self, logs: dict[str, torch.Tensor], n_steps: int, seconds: float, extra: dict[str, float] | None = None) -> dict[str, float]:
        keys = sorted(logs)
        vals = torch.zeros(0)
        if keys:
            vals = torch.stack([torch.as_tensor(logs[k], dtype=torch.float32, device=self.device) for k in keys]) / max(1, n_steps)
            vals = D.all_reduce_mean(vals, self.dist)
        row: dict[str, Any] = {
            "step": self.step,
            "epoch": self.loader.epoch,
            "time": round(self.elapsed, 3),
            "lr": self.opts[0].param_groups[0]["lr"],
        }
        row["images_per_s"] = round(n_steps * self.tc.batch_size / max(seconds, 1e-9), 2)
        row.update({k: float(v) for k, v in zip(keys, vals.tolist())})
        row.update(extra or {})
        warning = self.model.diagnose(row) if keys else None
        if self.dist.is_main:
            self.check_run_dir()
            with ckpt.writing(self.run_dir / rundir.METRICS), open(self.run_dir / rundir.METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")
                if warning:
                    f.write(json.dumps({"step": self.step, "event": "warning", "message": warning}) + "\n")
            for logger in self.loggers:
                logger.scalars(self.step, row)
            if time.perf_counter() - self._t_curves > CURVES_EVERY:
                plot_curves(self.run_dir / rundir.METRICS, self.run_dir / "loss.png")
                self._t_curves = time.perf_counter()
            if warning:
                from tqdm.auto import tqdm

                tqdm.write(f"genlab: warning at step {self.step}: {warning}", file=sys.stderr)
        return row

    def fit(self) -> TrainResult:
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._run_dir_id = _folder_id(self.run_dir)
            ckpt.atomic_write_text(self.run_dir / rundir.CONFIG, self.cfg.to_toml())
            if not self.resuming:
                (self.run_dir / rundir.METRICS).unlink(missing_ok=True)
            (self.run_dir / "interrupted").unlink(missing_ok=True)
            print(self.start_message(), file=sys.stderr)
        if not self.budget_left():
            self._hand_over()
            return TrainResult(self.run_dir, self.step, self.elapsed, "already done", self.sampling_model)
        if self.dist.is_main:
            self.loggers = make_loggers(self.tc.loggers, self.run_dir, self.step, self.cfg.to_dict())
        self.model.train()
        bar = self._progress_bar()
        t_log = time.perf_counter()
        t_ckpt = time.perf_counter()
        status = "done"
        try:
            with _StopSignal() as stop:
                while self.budget_left():
                    t0 = time.perf_counter()
                    ok = self.train_step(self.logs)
                    self.elapsed += time.perf_counter() - t0
                    self.n_log += 1
                    if D.any_rank(not ok, self.dist, self.device):
                        self._nonfinite(self.logs)
                    tc = self.tc
                    if self.step % tc.log_every == 0 or not self.budget_left():
                        extra = self.quick_eval() if tc.eval_every and self.step % tc.eval_every == 0 else None
                        row = self._log(self.logs, self.n_log, time.perf_counter() - t_log, extra)
                        self.logs, t_log, self.n_log = {}, time.perf_counter(), 0
                        if bar is not None:
                            bar.set_postfix(
                                loss=f"{row.get('loss', row.get(next((k for k in row if k.endswith('loss')), 'lr'))):.4g}",
                                img_s=f"{row['images_per_s']:.0f}",
                                refresh=False,
                            )
                    elif tc.eval_every and self.step % tc.eval_every == 0:
                        self._log({}, 0, 1.0, self.quick_eval())
                    if tc.sample_every and self.step % tc.sample_every == 0:
                        self.write_samples(f"step_{self.step:07d}")
                    if self.step % tc.ckpt_every == 0 or time.perf_counter() - t_ckpt > tc.ckpt_every_time:
                        self.save()
                        t_ckpt = time.perf_counter()
                    if bar is not None:
                        bar.update((self.step if tc.max_steps else min(int(self.elapsed), int(tc.max_time))) - bar.n)
                    if D.any_rank(stop.requested, self.dist, self.device):
                        status = "interrupted"
                        break
        finally:
            if bar is not None:
                bar.close()
        if self.last_ckpt_step != self.step:
            self.save()
        if self.dist.is_main:
            if status == "interrupted":
                (self.run_dir / "interrupted").write_text(f"interrupted at step {self.step}; run the same command again to resume\n")
                plot_curves(self.run_dir / rundir.METRICS, self.run_dir / "loss.png")
            else:
                self.finish()
            for logger in self.loggers:
                logger.close()
            self.loggers = []
        self._hand_over()
        return TrainResult(self.run_dir, self.step, self.elapsed, status, self.sampling_model)

    _run_dir_id: tuple[int, int] | None = None  # (device, inode) of the run directory fit() writes into

    def check_run_dir(self) -> None:
        """Stop when the run directory was deleted (or replaced) while training. genlab does not bring it back: the
        user removed it, and its lock went with it, so another run may be using the path now."""
        if self._run_dir_id is not None and _folder_id(self.run_dir) != self._run_dir_id:
            raise TrainingError(
                f"the run directory {self.run_dir} was deleted (or replaced) while training, at step {self.step}; training "
                "stopped without writing into it again (a deleted run is not brought back). Run the same command to start "
                "the run over, or train into another --run directory"
            )

    def storage_failure(self, e: StorageError) -> StorageError:
        """A failed write (a full disk, a read-only folder) as one line that also says what is kept."""
        kept = (
            f"the previous checkpoint (step {self.last_ckpt_step}) is intact"
            if self.last_ckpt_step is not None
            else "no checkpoint was written yet"
        )
        head = getattr(e, "head", str(e))
        err = StorageError(f"{head}; training stopped at step {self.step} and {kept}: free some space and run the same command to resume")
        err.errno, err.filename = e.errno, e.filename
        return err

    def start_message(self) -> str:
        """Where the run starts: from a checkpoint (its step and time) or from scratch."""
        if not self.resuming:
            return f"genlab: {self.run_dir}: no checkpoint yet: starting from step 0"
        when = datetime.fromtimestamp((self.run_dir / rundir.STATE).stat().st_mtime).strftime("%Y-%m-%d %H:%M:%S")
        return f"genlab: resuming {self.run_dir} from step {self.step} (checkpoint of {when})"

    def _hand_over(self) -> None:
        """The trained models as `genlab.load` gives them: in eval mode, knowing their run config and steps."""
        for m in {id(self.model): self.model, id(self.sampling_model): self.sampling_model}.values():
            m.run = RunContext(self.cfg, self.step)
            m.eval()

    def finish(self) -> None:
        """End-of-run artefacts: a final sample grid and the loss curves."""
        if self.tc.progress:
            n = modality_of(self.spec).preview_count(self.tc.n_samples)
            print(f"genlab: budget spent at step {self.step}; drawing {n} final samples and pictures ...", file=sys.stderr)
        self.write_samples("final")
        self.write_figures()
        if self.tc.eval_every is None:
            extra = self.quick_eval()
            if extra:
                self._log({}, 0, 1.0, extra)
        plot_curves(self.run_dir / rundir.METRICS, self.run_dir / "loss.png")

    def _nonfinite(self, logs: dict[str, torch.Tensor]) -> None:
        """A step whose loss or gradient was not finite: skip it (train.on_nonfinite=skip, up to train.max_consecutive_skips in a
        row) or stop with the last good checkpoint kept. Either way metrics.jsonl gets an event line saying what."""
        fault = self.fault or "on another process"
        step = self.step + 1
        self.consecutive_skips += 1
        if self.tc.on_nonfinite == "skip" and self.consecutive_skips <= self.tc.max_consecutive_skips:
            self.skipped += 1
            self.step, self.n_log = step, self.n_log - 1  # the step counts for the budget, not in the averages
            msg = f"non-finite {fault} at step {step}: the update was skipped ({self.consecutive_skips} in a row)"
            self._event(
                {"step": step, "event": "skipped step", "skipped": self.skipped, "consecutive": self.consecutive_skips, "message": msg}
            )
            return
        where = (
            f"the last good checkpoint (step {self.last_ckpt_step}) is kept"
            if self.last_ckpt_step is not None
            else "no checkpoint was written yet"
        )
        after = f" after {self.tc.max_consecutive_skips} skipped steps in a row" if self.tc.on_nonfinite == "skip" else ""
        msg = (
            f"non-finite loss at step {step} ({fault}){after}; training stopped and {where} in {self.run_dir}. "
            "Try a lower train.lr or train.grad_clip"
            + (", or train.on_nonfinite=skip to skip such steps." if self.tc.on_nonfinite == "stop" else ".")
        )
        self._event({"step": step, "event": "non-finite loss", "message": msg})
        raise TrainingError(msg)

    def _event(self, row: dict[str, Any]) -> None:
        if self.dist.is_main:
            with ckpt.writing(self.run_dir / rundir.METRICS), open(self.run_dir / rundir.METRICS, "a") as f:
                f.write(json.dumps(row) + "\n")

    def leave_group(self, *, together: bool = True) -> None:
        """Leave the process group (a no-op for one process). The DDP wrapper goes first, while the group and the
        interpreter are alive: left to interpreter exit, its reducer's gloo work can abort the process (SIGABRT)."""
        if self.dist.enabled:
            self.net = _LossModule(self.model)
            gc.collect()
        D.shutdown(self.dist, together=together)

    def _progress_bar(self) -> Any:
        if not (self.tc.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        desc = self.run_dir.name
        if self.device.type == "cpu":
            desc += f" (cpu, {torch.get_num_threads()} threads)"
        if self.tc.max_steps:
            return tqdm(total=self.tc.max_steps, initial=self.step, unit="step", dynamic_ncols=True, desc=desc)
        time_bar = "{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]"  # a rate in s/s says nothing
        return tqdm(total=int(self.tc.max_time), initial=int(self.elapsed), unit="s", dynamic_ncols=True, desc=desc, bar_format=time_bar)


def _folder_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when it is gone: a folder deleted and made again has another inode."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _json_row(line: str) -> dict | None:
    """A metrics.jsonl line as a dict; None for a blank line or the half line a power cut can leave."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def train(cfg: RunConfig, run_dir: str | os.PathLike, *, resume: Literal["auto", "always", "never"] = "auto") -> TrainResult:
    """Train (or resume) a run; see `Trainer`."""
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(cfg, run_dir, resume=resume)
        try:
            result = trainer.fit()
        except BaseException as e:
            trainer.leave_group(together=False)
            if isinstance(e, StorageError):
                raise trainer.storage_failure(e) from None
            raise
        trainer.leave_group()
        return result
    finally:
        rundir.release(run_dir)  # a notebook that trained a run does not keep it locked
        torch.set_num_threads(threads)  # the trainer's thread count is not left behind in the caller
        torch.set_flush_denormal(False)  # nor its flushing of subnormals (PyTorch's default is off)
