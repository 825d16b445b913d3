"""Typed dataclass configs <-> TOML, with dotted `section.key=value` overrides.

A run config has four sections, `data`, `model`, `train`, `eval`; the class of `model` is chosen
by its `name` through the registry. Unknown keys and bad values fail before any work starts,
naming the key, what was expected and the closest valid keys.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genlab.errors import ConfigError, did_you_mean

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def param(default: Any = dataclasses.MISSING, *, help: str = "", ge=None, gt=None, le=None, lt=None, default_factory=dataclasses.MISSING):
    """A dataclass field with a help text and an optional range, checked when the config is built."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Turn `value` (from TOML or the command line) into type `tp`, or raise ConfigError naming `key`."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}.{did_you_mean(str(value), map(str, choices))}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None  # `key=none` on the command line unsets an optional key
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, key)
            except ConfigError:
                pass
        raise bad
    if origin in (tuple, list):
        if isinstance(value, str):
            parsed = _parse_value(value)
            value = parsed if isinstance(parsed, list) else [parsed]
        if not isinstance(value, (list, tuple)):
            raise bad
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        items = [coerce(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported field type {tp!r}")


def _check_range(value: Any, meta: dict, key: str) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    vals = value if isinstance(value, (list, tuple)) else [value]
    for v in vals:
        if not isinstance(v, (int, float)):
            return
        if meta.get("ge") is not None and not v >= meta["ge"]:
            raise ConfigError(f"{key}: expected a value >= {meta['ge']}, got {value!r}")
        if meta.get("gt") is not None and not v > meta["gt"]:
            raise ConfigError(f"{key}: expected a value > {meta['gt']}, got {value!r}")
        if meta.get("le") is not None and not v <= meta["le"]:
            raise ConfigError(f"{key}: expected a value <= {meta['le']}, got {value!r}")
        if meta.get("lt") is not None and not v < meta["lt"]:
            raise ConfigError(f"{key}: expected a value < {meta['lt']}, got {value!r}")


def build(cls: type, values: dict[str, Any], section: str) -> Any:
    """Build dataclass `cls` from a dict, checking every key, type and range."""
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table of key = value, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown key {section}.{key}.{did_you_mean(key, fields)}")
        kwargs[key] = coerce(value, hints[key], f"{section}.{key}")
        _check_range(kwargs[key], fields[key].metadata, f"{section}.{key}")
    for f in fields.values():
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key {section}.{f.name}: {f.metadata.get('help', '')}".rstrip(": "))
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a TOML-ready dict (tuples as lists, None values dropped)."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if v is None:
            continue
        if dataclasses.is_dataclass(v):
            v = to_dict(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) for every field of a config class, for `genlab list` and docs."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        )
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


@dataclass
class DataConfig:
    """Which data, how it is transformed. Images come out in [-1, 1], NCHW; 2D data as N x 2."""

    name: str = param(help="dataset name from the registry (genlab list)")
    root: str | None = param(None, help="folder with the files (image_folder: the images; IDX data: overrides the search path)")
    image_size: int | None = param(None, ge=4, help="image_folder: resize + centre-crop to this size")
    channels: int | None = param(None, help="image_folder: 1 (grayscale) or 3 (RGB); default from the files")
    pad_to: int | None = param(None, ge=1, help="zero-pad (in [-1, 1]: pad with -1) images to this size, e.g. 28 -> 32")
    dequantize: bool = param(True, help="add uniform noise to 8-bit pixels (for continuous densities)")
    binarize: bool = param(False, help="dynamic binarisation: each pixel ~ Bernoulli(intensity), values {-1, 1}")
    frames: int | None = param(None, ge=1, help="video_folder: frames per clip (longer clips cut into windows); default the shortest")
    n_train: int | None = param(None, ge=1, help="keep only the first n training examples (toy data: how many to draw)")
    n_test: int | None = param(None, ge=1, help="keep only the first n test examples")
    seed: int = param(0, help="seed for toy-data draws")
    sample_rate: int | None = param(None, ge=1000, le=192_000, help="audio: resample clips to this rate in Hz (default: the set's own)")
    clip_seconds: float | None = param(None, gt=0, le=60, help="audio: cut or zero-pad clips to this many seconds (default: the set's own)")

    def validate(self) -> None:
        if self.channels is not None and self.channels not in (1, 3):
            raise ConfigError(f"data.channels: expected 1 or 3, got {self.channels}")
        if self.binarize and self.dequantize:
            # Binarised data is discrete by construction; dequantising it is never what is meant.
            self.dequantize = False


@dataclass
class TrainConfig:
    """One trainer for every family: budgets, optimiser, schedule, EMA, checkpoints."""

    batch_size: int = param(128, ge=1, help="global batch size (split over ranks under torchrun)")
    max_steps: int | None = param(None, ge=1, le=10**9, help="stop after this many optimiser steps")
    max_time: float | None = param(None, gt=0, le=1e9, help="stop after this many seconds of training")
    lr: float = param(1e-3, gt=0, help="peak learning rate (AdamW)")
    weight_decay: float = param(0.0, ge=0, help="AdamW weight decay")
    betas: tuple[float, float] = param((0.9, 0.999), help="AdamW betas")
    warmup_steps: int = param(100, ge=0, help="linear warm-up steps")
    schedule: Literal["cosine", "constant"] = param("cosine", help="learning-rate schedule after warm-up")
    min_lr_ratio: float = param(0.1, ge=0, le=1, help="cosine: final lr as a fraction of the peak")
    grad_clip: float | None = param(None, gt=0, help="clip the global gradient norm to this value (default: no clipping)")
    grad_accum: int = param(1, ge=1, help="micro-batches accumulated per optimiser step")
    ema_decay: float = param(0.0, ge=0, lt=1, help="EMA of the weights (0 = off); sampling uses the EMA")
    ema_warmup: bool = param(True, help="EMA decay ramps as min(decay, (1 + n) / (10 + n))")
    precision: Literal["auto", "fp32", "bf16"] = param("auto", help="auto: bf16 autocast on CUDA when supported, fp32 on CPU")
    device: str = param("auto", help="auto, cpu, cuda, cuda:N")
    num_threads: int | None = param(None, ge=1, help="CPU threads (default: the number of cores)")
    flush_denormal: bool = param(
        True,
        help="CPU: flush subnormal floats to zero while training (optimiser moments of dead units decay into "
        "subnormals, which x86 CPUs compute many times slower)",
    )
    seed: int = param(0, help="seed for weights, data order and noise")
    log_every: int = param(50, ge=1, help="steps between metrics.jsonl lines")
    sample_every: int | None = param(None, ge=1, help="steps between sample grids (default: at the end only)")
    eval_every: int | None = param(None, ge=1, help="steps between evaluations on eval.n_batches test batches")
    ckpt_every: int = param(1000, ge=1, help="steps between checkpoints")
    ckpt_every_time: float = param(60.0, gt=0, help="seconds between checkpoints (whichever comes first): a killed run loses at most this")
    n_samples: int = param(64, ge=1, help="images in each sample grid")
    progress: bool = param(True, help="show a progress bar")
    loggers: tuple[str, ...] | None = param(
        None, help="where logs go besides metrics.jsonl: tensorboard, wandb, mlflow (default: tensorboard when installed)"
    )
    on_nonfinite: Literal["stop", "skip"] = param(
        "stop",
        help="a NaN/Inf loss or gradient: stop (the last good checkpoint is kept) or skip that update and go on",
    )
    max_consecutive_skips: int = param(10, ge=1, help="on_nonfinite=skip: stop after this many consecutive skipped steps")

    def validate(self) -> None:
        if self.max_steps is None and self.max_time is None:
            raise ConfigError("train: set a budget, train.max_steps or train.max_time (or both)")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"train.{f.name}: expected a finite number, got {v!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(
                f"train.betas: expected two numbers in [0, 1) (AdamW's beta1, beta2), e.g. [0.9, 0.999]; got {list(self.betas)}"
            )
        if not re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", self.device):
            raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"train.batch_size ({self.batch_size}) must be divisible by train.grad_accum ({self.grad_accum})")


@dataclass
class EvalConfig:
    """What `genlab eval` computes and on how much data."""

    split: Literal["test", "train"] = param("test", help="which split to evaluate on")
    n_examples: int | None = param(None, ge=1, help="evaluate on the first n examples (default: all)")
    iwae_k: int = param(1000, ge=1, help="importance samples for the IWAE bound (latent-variable models)")
    batch_size: int = param(256, ge=1, help="evaluation batch size")
    n_batches: int = param(4, ge=1, help="test batches for the periodic evaluation during training")
    n_samples: int = param(10000, ge=2, help="samples for sample-quality metrics")
    sample_metrics: bool = param(True, help="compute FID/KID/precision/recall/density/coverage (images) or MMD (2D data)")
    features: str | None = param(None, help="feature network for image metrics (default: the dataset's own, e.g. fashion_mnist)")
    seed: int = param(0, help="seed for the evaluation's samples and noise")


@dataclass
class ModelConfig:
    """Base of every model's config: `name` picks the model from the registry."""

    name: str = param(help="model name from the registry (genlab list)")


SECTIONS = ("data", "model", "train", "eval")


@dataclass
class RunConfig:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return {s: to_dict(getattr(self, s)) for s in SECTIONS}

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def _parse_value(text: str) -> Any:
    """A command-line value: TOML syntax when it parses (numbers, booleans, lists), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply `section.key=value` overrides to a raw config dict (a copy is returned)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides]
    for dotted, value in items:
        section, _, key = dotted.partition(".")
        if section not in SECTIONS or not key:
            raise ConfigError(f"override {dotted!r}: expected section.key=value with section one of {', '.join(SECTIONS)}.")
        if not isinstance(raw.setdefault(section, {}), dict):
            raise ConfigError(f"[{section}] must be a table of key = value, got {raw[section]!r}")
        raw[section][key] = _parse_value(value) if isinstance(value, str) else value
    return raw


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. train.max_steps=1000")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def load_toml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory; give a TOML file (presets are under configs/<family>/)")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist (presets are under configs/<family>/)")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; a config is a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def build_run_config(raw: dict[str, Any] | str | os.PathLike | RunConfig, overrides: list[str] | dict[str, Any] | None = None) -> RunConfig:
    """The resolved RunConfig from a TOML path, a dict or a RunConfig, plus overrides."""
    from genlab import registry

    if isinstance(raw, RunConfig):
        raw = raw.to_dict()
    elif not isinstance(raw, dict):
        raw = load_toml(raw)
    raw = apply_overrides(raw, overrides or [])
    for s in raw:
        if s not in SECTIONS:
            raise ConfigError(f"unknown section [{s}].{did_you_mean(s, SECTIONS)}")
    for s in SECTIONS:
        if not isinstance(raw.get(s, {}), dict):
            raise ConfigError(f"[{s}] must be a table of key = value, got {raw[s]!r}")
    for s in ("data", "model"):
        what = "dataset" if s == "data" else "model"
        if "name" not in raw.get(s, {}):
            raise ConfigError(f"missing key {s}.name: which {what} to use (genlab list)")
        if not isinstance(raw[s]["name"], str):
            raise ConfigError(f"{s}.name: expected the name of a {what} (a string, genlab list), got {raw[s]['name']!r}")
    model_cls = registry.model_config_class(raw["model"]["name"])
    registry.dataset(raw["data"]["name"])  # fail early on an unknown dataset
    return RunConfig(
        data=build(DataConfig, raw.get("data", {}), "data"),
        model=build(model_cls, raw["model"], "model"),
        train=build(TrainConfig, raw.get("train", {}), "train"),
        eval=build(EvalConfig, raw.get("eval", {}), "eval"),
    )
