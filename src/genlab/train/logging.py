"""Where a run's numbers and pictures go while it trains, behind one small interface: TensorBoard (on by default when
the `tensorboard` package is installed), Weights & Biases and MLflow (when asked for), beside metrics.jsonl and
loss.png, which the trainer always writes."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from genlab.errors import ConfigError

TENSORBOARD_DIR = "tb"
KNOWN = ("jsonl", "tensorboard", "wandb", "mlflow")
NOT_SCALARS = {"step", "epoch", "event", "message"}


class Logger:
    """A sink for a run's logged rows and pictures. `scalars` gets each metrics.jsonl row; `image` each sample preview."""

    def scalars(self, step: int, row: dict[str, Any]) -> None:
        pass

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """`image`: H x W x C uint8."""

    def close(self) -> None:
        pass


def numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if k not in NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardLogger(Logger):
    """Event files under RUN/tb; a resumed run drops the events written after its checkpoint (`purge_step`)."""

    def __init__(self, run_dir: Path, step: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=step or None)

    def scalars(self, step: int, row: dict[str, Any]) -> None:
        for k, v in numbers(row).items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger(Logger):
    """Weights & Biases (`pip install wandb`; the project is $WANDB_PROJECT, default "genlab")."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "genlab"), name=run_dir.name, config=config, resume="allow")

    def scalars(self, step: int, row: dict[str, Any]) -> None:
        self.run.log(numbers(row), step=step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        self.run.log({tag: self.wandb.Image(image)}, step=step)

    def close(self) -> None:
        self.run.finish()


class MLflowLogger(Logger):
    """MLflow (`pip install mlflow`; the tracking URI from $MLFLOW_TRACKING_URI, as MLflow reads it)."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import mlflow

        self.mlflow = mlflow
        mlflow.start_run(run_name=run_dir.name)
        mlflow.log_params({f"{s}.{k}": v for s, sec in config.items() for k, v in sec.items()})

    def scalars(self, step: int, row: dict[str, Any]) -> None:
        self.mlflow.log_metrics(numbers(row), step=step)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        self.mlflow.log_image(image, f"{tag}_{step:07d}.png")

    def close(self) -> None:
        self.mlflow.end_run()


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def default_loggers() -> tuple[str, ...]:
    """jsonl always; tensorboard when its package is installed."""
    return ("jsonl", "tensorboard") if installed("tensorboard") else ("jsonl",)


def make_loggers(names: tuple[str, ...] | list[str] | None, run_dir: Path, step: int, config: dict[str, Any]) -> list[Logger]:
    """The loggers named in train.loggers (None: `default_loggers()`); "jsonl" is metrics.jsonl, written by the trainer."""
    names = default_loggers() if names is None else tuple(names)
    out: list[Logger] = []
    for name in names:
        if name not in KNOWN:
            raise ConfigError(f"train.loggers: unknown logger {name!r}; expected some of {', '.join(KNOWN)}")
        package = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}.get(name)
        if package and not installed(package):
            raise ConfigError(f"train.loggers: {name!r} needs the {package!r} package: pip install {package} (or leave it out)")
        if name == "tensorboard":
            out.append(TensorBoardLogger(run_dir, step))
        elif name == "wandb":
            out.append(WandbLogger(run_dir, config))
        elif name == "mlflow":
            out.append(MLflowLogger(run_dir, config))
    return out
