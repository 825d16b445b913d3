"""The `genlab` command: parses arguments, then calls the public API (genlab.api)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from genlab import registry
from genlab.errors import ConfigError, GenlabError, TrainingError

THREADS_HELP = "CPU threads (default: the cores this process may use)"
EPILOG_TRAIN = """examples:
  genlab train configs/vae/vae_fmnist.toml
  genlab train configs/vae/vae_fmnist.toml train.max_time=120 model.latent_dim=16 --run runs/small
  genlab train configs/vae/vae_fmnist.toml --run runs/small train.max_time=120 --threads 2   # any order
  torchrun --nproc_per_node 2 -m genlab train configs/vae/vae_fmnist.toml --run-dir runs/ddp   # data parallel
A run directory that exists is resumed when its config matches (budgets may change), refused otherwise."""


def _cmd_train(a: argparse.Namespace) -> int:
    from genlab import api

    resume = "always" if a.resume else "never" if a.fresh else "auto"
    overrides = a.overrides if a.threads is None else [*a.overrides, f"train.num_threads={a.threads}"]
    res = api.train(a.config, overrides, run_dir=a.run, resume=resume)
    if os.environ.get("RANK", "0") != "0":
        return 130 if res.status == "interrupted" else 0  # under torchrun only rank 0 reports
    if res.status == "interrupted":
        print(f"interrupted at step {res.step}; checkpoint saved in {res.run_dir}. Run the same command to resume.", file=sys.stderr)
        return 130
    if res.status == "already done":
        print(f"{res.run_dir} already finished its budget (step {res.step}); raise train.max_steps / train.max_time to continue.")
    else:
        print(f"trained {res.step} steps in {res.elapsed:.0f} s -> {res.run_dir}")
    return 0


def _cmd_sample(a: argparse.Namespace) -> int:
    from genlab import api

    set_threads(a)
    model = api.load(a.run, device=a.device)
    try:
        labels = [int(v) for v in a.labels.split(",")] if a.labels else None
    except ValueError:
        raise ConfigError(f"--labels {a.labels!r}: expected class numbers, e.g. 3 or 0,1,2") from None
    x, y = api.sample(model, a.n, seed=a.seed, labels=labels, device=a.device, **sampler_options(a))
    out = api.save_samples(x, y, a.out, model)
    print(f"{a.n} samples -> {out}")
    return 0


FLAG_TYPES = (int, float, str)  # options of these types become flags; booleans and the rest go through -o KEY=VALUE


def sampler_flags() -> dict[str, tuple[type, str]]:
    """Every sampling option some registered model declares in `sample_options()`, with its type and the help texts."""
    flags: dict[str, tuple[type, list[str]]] = {}
    for name in registry.list_models():
        for opt in registry.model(name)[1].sample_options():
            if opt.type in FLAG_TYPES:
                tp, helps = flags.setdefault(opt.name, (opt.type, []))
                if opt.help not in helps:
                    helps.append(opt.help)
    return {k: (tp, "; ".join(helps)) for k, (tp, helps) in sorted(flags.items())}


def add_sampler_arguments(p: argparse.ArgumentParser) -> None:
    """Sampling options shared by `sample`, `eval` and the apps; only those given reach `model.sample`."""
    g = p.add_argument_group("sampling options (each model takes its own: `genlab list -v`)")
    for name, (tp, help_) in sampler_flags().items():
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=tp, default=None, help=help_)
    g.add_argument(
        "--option", "-o", dest="options", action="append", default=[], metavar="KEY=VALUE", help="any other option of the model's sample()"
    )


def sampler_options(a: argparse.Namespace) -> dict:
    """The sampling options given on the command line, as keyword arguments for `model.sample`."""
    import ast

    out = {k: getattr(a, k) for k in sampler_flags() if getattr(a, k, None) is not None}
    for item in getattr(a, "options", []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _cmd_eval(a: argparse.Namespace) -> int:
    from genlab import api

    set_threads(a)
    res = api.evaluate(a.run, a.overrides, device=a.device, **sampler_options(a))
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict) and k != "eval_json"}, indent=2))
    print(f"-> {res['eval_json']}" if res.get("eval_json") else f"(not written: {a.run} is read-only)")
    return 0


def _cmd_list(a: argparse.Namespace) -> int:
    from genlab.config import DataConfig, EvalConfig, TrainConfig, describe

    if a.verbose:
        for section, cls in (("data", DataConfig), ("train", TrainConfig), ("eval", EvalConfig)):
            print(f"[{section}]")
            for key, tp, default, help_ in describe(cls):
                print(f"           {section}.{key:<18} {tp:<28} = {default!r:<14} {help_}")
    for name in registry.list_models():
        cfg_cls, cls = registry.model(name)
        print(f"model    {name:<20} {cls.family:<15} likelihood: {cls.likelihood}")
        if a.verbose:
            for key, tp, default, help_ in describe(cfg_cls):
                print(f"           model.{key:<18} {tp:<28} = {default!r:<14} {help_}")
            for opt in cls.sample_options():
                print(f"           sample: {opt.name:<17} {opt.type.__name__:<28}   {opt.help}")
    for name in registry.list_datasets():
        print(f"dataset  {name}")
    for name in registry.list_samplers():
        print(f"sampler  {name}")
    for name in registry.list_modalities():
        print(f"modality {name:<10} --out {' '.join(s or 'DIR/' for s in registry.modality(name).suffixes)}")
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    from genlab import api

    print(json.dumps(api.info(a.run), indent=2, default=str))
    return 0


def _cmd_board(a: argparse.Namespace) -> int:
    import subprocess

    from genlab.train.logging import installed

    if not Path(a.logdir).is_dir():
        raise ConfigError(f"{a.logdir} is not a folder: give the folder of your runs (default runs/)")
    if not installed("tensorboard"):
        raise ConfigError("genlab board needs the tensorboard package: pip install tensorboard")
    print(f"TensorBoard on http://localhost:{a.port}/ for the runs under {a.logdir} (Ctrl-C stops it)", flush=True)
    return subprocess.call([sys.executable, "-m", "tensorboard.main", "--logdir", a.logdir, "--port", str(a.port)])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description="Train, sample and evaluate deep generative models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model from a preset",
        description="Train a model from a TOML preset.",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("config", help="preset TOML file, e.g. configs/vae/vae_fmnist.toml")
    t.add_argument("overrides", nargs="*", metavar="section.key=value", help="override any config key")
    t.add_argument(
        "--run", "--run-dir", dest="run", default=None, help="run directory (default: runs/<preset name>); under torchrun write --run-dir"
    )
    t.add_argument("--threads", type=int, default=None, help=THREADS_HELP + " (the same as train.num_threads=N)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="require an existing checkpoint to resume")
    g.add_argument("--fresh", action="store_true", help="refuse to reuse an existing run directory")
    t.set_defaults(fn=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run", description="Draw samples from a trained run.")
    s.add_argument("run", help="run directory")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument(
        "--out",
        required=True,
        help="a file in a format the data's modality writes (`genlab list` shows each one's suffixes): images FILE.png (grid) or "
        "FILE.npz (uint8 N x C x H x W under 'images', 'labels'); a folder for waveforms (one WAV per sample)",
    )
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--labels", default=None, help="class labels for conditional models, e.g. 3 or 0,1,2 (default: balanced)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    add_sampler_arguments(s)
    s.set_defaults(fn=_cmd_sample)

    e = sub.add_parser("eval", help="evaluate a run on its test split", description="Likelihood (or bound) on the test split -> eval.json.")
    e.add_argument("run", help="run directory")
    e.add_argument("overrides", nargs="*", metavar="eval.key=value", help="e.g. eval.iwae_k=100 eval.n_examples=1000")
    e.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    e.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    add_sampler_arguments(e)
    e.set_defaults(fn=_cmd_eval)

    li = sub.add_parser("list", help="list models, datasets and samplers", description="List what the registry holds.")
    li.add_argument("-v", "--verbose", action="store_true", help="also list every config key and sampling option")
    li.set_defaults(fn=_cmd_list)

    b = sub.add_parser(
        "board", help="watch runs live in TensorBoard", description="Start TensorBoard over a folder of runs (their tb/ event files)."
    )
    b.add_argument("logdir", nargs="?", default="runs", help="folder of runs (default runs/)")
    b.add_argument("--port", type=int, default=6006, help="port (default 6006)")
    b.set_defaults(fn=_cmd_board)

    i = sub.add_parser("info", help="describe a run", description="Model, data, step, parameters and last metrics of a run.")
    i.add_argument("run", help="run directory")
    i.set_defaults(fn=_cmd_info)

    from genlab.report.html import add_parser as add_report_parser

    add_report_parser(sub)
    for module in _app_modules():
        module.add_parser(sub)
    return p


def _app_modules() -> list:
    """Every genlab.apps module with an `add_parser(subparsers)` adds its own subcommand."""
    import importlib
    import pkgutil

    import genlab.apps

    names = [m.name for m in pkgutil.iter_modules(genlab.apps.__path__) if not m.name.startswith("_")]
    mods = [importlib.import_module(f"genlab.apps.{name}") for name in sorted(names)]
    return [m for m in mods if hasattr(m, "add_parser")]


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse with `section.key=value` overrides anywhere on the line (`genlab train CONFIG --run DIR key=value`):
    argparse takes the overrides only before the first option, so the ones after it are collected here."""
    args, extra = parser.parse_known_args(argv)
    late = [e for e in extra if "=" in e and not e.startswith("-")]
    if late and hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *late]
        extra = [e for e in extra if e not in late]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def set_threads(a: argparse.Namespace) -> None:
    """--threads N for sample / eval / the apps (training takes it as train.num_threads)."""
    if getattr(a, "threads", None) is not None:
        import torch

        torch.set_num_threads(a.threads)


def format_warning(message: Warning | str, category: type, filename: str, lineno: int, line: Any = None) -> str:
    """A warning as one readable line, without Python's source path and category."""
    return f"genlab: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    shown, warnings.formatwarning = warnings.formatwarning, format_warning
    try:
        return args.fn(args)
    except TrainingError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 1
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be written or read: say which, without a traceback
        print(f"genlab: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
