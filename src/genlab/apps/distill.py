"""`genlab distill RUN`: consistency distillation (Song et al. 2023) of a trained diffusion or flow-matching run into a
consistency model that samples in 1 to 4 network evaluations; the teacher's ODE step gives the training target."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from genlab import checkpoint as ckpt
from genlab import registry
from genlab.config import build_run_config, load_toml, to_dict
from genlab.errors import ConfigError
from genlab.train.trainer import TrainResult, train

# The network keys a student takes over from its teacher (the same names in every denoising model's config).
NETWORK_KEYS = ("network", "channels", "blocks", "attn_resolutions", "heads", "width", "depth", "conditional", "p_uncond")


def distill_config(
    teacher: str | os.PathLike, config: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """The student's raw run config: `config` (a preset such as configs/fast/cd_fmnist.toml) when given, else the teacher's
    data and training sections with a consistency model of the teacher's network; model.teacher = the teacher run; overrides last."""
    t_cfg = ckpt.read_run_config(teacher)
    if not hasattr(registry.model(t_cfg.model.name)[1], "denoiser"):
        raise ConfigError(f"distill: {teacher} holds a {t_cfg.model.name!r} model; the teacher must be a diffusion or flow-matching run")
    if config is not None:
        raw = load_toml(config)
    else:
        t = to_dict(t_cfg)
        student_keys = {k for k in to_dict(registry.model_config_class("consistency")(name="consistency"))}
        model = {k: v for k, v in t["model"].items() if k in NETWORK_KEYS and k in student_keys}
        raw = {"data": t["data"], "train": t["train"], "eval": t.get("eval", {}), "model": {"name": "consistency", **model}}
    raw.setdefault("model", {})["teacher"] = str(Path(teacher).resolve())
    return build_run_config(raw, overrides or []).to_dict()


def distill(
    teacher: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    resume: str = "auto",
) -> TrainResult:
    """Train a consistency model distilled from the run `teacher` into `out` (default: <teacher>_cd).

    >>> res = distill("runs/fm_fmnist", config="configs/fast/cd_fmnist.toml", overrides=["train.max_time=600"])  # doctest: +SKIP
    >>> genlab.load(res.run_dir).sample(16, steps=1)                                                               # doctest: +SKIP
    """
    cfg = build_run_config(distill_config(teacher, config, overrides))
    run_dir = Path(out) if out is not None else Path(f"{Path(teacher).as_posix().rstrip('/')}_cd")
    return train(cfg, run_dir, resume=resume)


def _cmd(a: argparse.Namespace) -> int:
    res = distill(a.run, out=a.out, config=a.config, overrides=a.overrides)
    print(
        f"distilled {a.run} in {res.step} steps ({res.elapsed:.0f} s) -> {res.run_dir}; sample with: genlab sample {res.run_dir} --steps 1"
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab distill RUN [key=value ...] [--out DIR] [--config PRESET]` (overrides before the options, as for train)."""
    p = subparsers.add_parser(
        "distill",
        help="consistency distillation of a diffusion or flow-matching run into a 1-4 step model",
        description="Consistency distillation (Song et al. 2023): the student f(x, sigma) learns to map every point of the "
        "teacher's probability-flow ODE to its end; the teacher's Heun step between neighbouring noise levels gives the target.",
        epilog="examples:\n  genlab distill runs/fm_fmnist --config configs/fast/cd_fmnist.toml\n"
        "  genlab distill runs/ddpm_fmnist --out runs/cd_ddpm train.max_time=600 model.teacher_steps=18\n"
        "  genlab sample runs/fm_fmnist_cd --steps 1 --out cd1.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="the teacher's run directory (a diffusion or flow-matching model)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override any key of the student's config")
    p.add_argument("--out", default=None, help="the student's run directory (default: RUN_cd)")
    p.add_argument("--config", default=None, help="a preset to start from (default: the teacher's data, budget and network)")
    p.set_defaults(fn=_cmd)
    return p


__all__ = ["add_parser", "distill", "distill_config"]
