"""The `genlab` command: parses arguments, then calls the public API (genlab.api)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from genlab.errors import ConfigError, GenlabError, TrainingError

EPILOG_TRAIN = """examples:
  genlab train configs/vae/vae_fmnist.toml
  genlab train configs/vae/vae_fmnist.toml train.max_time=120 model.latent_dim=16 --run runs/small
  torchrun --nproc_per_node 2 -m genlab train configs/vae/vae_fmnist.toml --run-dir runs/ddp   # data parallel
A run directory that exists is resumed when its config matches (budgets may change), refused otherwise."""


def _cmd_train(a: argparse.Namespace) -> int:
    from genlab import api

    resume = "always" if a.resume else "never" if a.fresh else "auto"
    res = api.train(a.config, a.overrides, run_dir=a.run, resume=resume)
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

    model = api.load(a.run, device=a.device)
    labels = [int(v) for v in a.labels.split(",")] if a.labels else None
    x, y = api.sample(model, a.n, seed=a.seed, labels=labels, device=a.device, **sampler_options(a))
    out = api.save_samples_file(x, y, a.out, model.spec)
    print(f"{a.n} samples -> {out}")
    return 0


def add_sampler_arguments(p: argparse.ArgumentParser) -> None:
    """Sampling options shared by `sample`, `eval` and the apps; only those given reach `model.sample`."""
    g = p.add_argument_group("sampling options (each family takes its own; see genlab list)")
    g.add_argument("--sampler", default=None, help="diffusion sampler: ddpm, ddim, euler, heun, dpmpp_2m (genlab list)")
    g.add_argument("--steps", type=int, default=None, help="number of sampler steps (diffusion)")
    g.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (conditional diffusion)")
    g.add_argument("--eta", type=float, default=None, help="DDIM stochasticity (0 = deterministic)")
    g.add_argument("--temperature", type=float, default=None, help="sampling temperature (flows, autoregressive models)")
    g.add_argument("--truncation", type=float, default=None, help="truncation of the latent, in (0, 1] (GANs)")
    g.add_argument("--top-k", dest="top_k", type=int, default=None, help="keep the k most likely tokens (autoregressive)")
    g.add_argument("--top-p", dest="top_p", type=float, default=None, help="nucleus sampling mass (autoregressive)")
    g.add_argument(
        "--option", "-o", dest="options", action="append", default=[], metavar="KEY=VALUE", help="any other option of the model's sample()"
    )


SAMPLER_FLAGS = ("sampler", "steps", "guidance", "eta", "temperature", "truncation", "top_k", "top_p")


def sampler_options(a: argparse.Namespace) -> dict:
    """The sampling options given on the command line, as keyword arguments for `model.sample`."""
    import ast

    out = {k: getattr(a, k) for k in SAMPLER_FLAGS if getattr(a, k, None) is not None}
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

    res = api.evaluate(a.run, a.overrides, device=a.device, **sampler_options(a))
    print(json.dumps({k: v for k, v in res.items() if not isinstance(v, dict)}, indent=2))
    print(f"-> {Path(a.run) / 'eval.json'}")
    return 0


def _cmd_list(a: argparse.Namespace) -> int:
    from genlab import registry
    from genlab.config import describe

    for name in registry.list_models():
        cfg_cls, cls = registry.model(name)
        print(f"model    {name:<20} {cls.family:<15} likelihood: {cls.likelihood}")
        if a.verbose:
            for key, tp, default, help_ in describe(cfg_cls):
                print(f"           model.{key:<18} {tp:<28} = {default!r:<14} {help_}")
    for name in registry.list_datasets():
        print(f"dataset  {name}")
    for name in registry.list_samplers():
        print(f"sampler  {name}")
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    from genlab import api

    print(json.dumps(api.info(a.run), indent=2, default=str))
    return 0


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
    g = t.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="require an existing checkpoint to resume")
    g.add_argument("--fresh", action="store_true", help="refuse to reuse an existing run directory")
    t.set_defaults(fn=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run", description="Draw samples from a trained run.")
    s.add_argument("run", help="run directory")
    s.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    s.add_argument("--out", required=True, help="FILE.png (grid) or FILE.npz (uint8 images N x C x H x W under 'images', 'labels')")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--labels", default=None, help="class labels for conditional models, e.g. 3 or 0,1,2 (default: balanced)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    add_sampler_arguments(s)
    s.set_defaults(fn=_cmd_sample)

    e = sub.add_parser("eval", help="evaluate a run on its test split", description="Likelihood (or bound) on the test split -> eval.json.")
    e.add_argument("run", help="run directory")
    e.add_argument("overrides", nargs="*", metavar="eval.key=value", help="e.g. eval.iwae_k=100 eval.n_examples=1000")
    e.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    add_sampler_arguments(e)
    e.set_defaults(fn=_cmd_eval)

    li = sub.add_parser("list", help="list models, datasets and samplers", description="List what the registry holds.")
    li.add_argument("-v", "--verbose", action="store_true", help="also list every model's config keys")
    li.set_defaults(fn=_cmd_list)

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TrainingError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 1
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
