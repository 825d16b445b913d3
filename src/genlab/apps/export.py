"""Share a trained model: `genlab export RUN DIR` writes a self-contained model folder (weights, config, a model card
with the run's metrics and sample grid) that `genlab.load` reads, and pushes it to / pulls it from the Hugging Face
Hub when a network is there (`huggingface_hub`; offline, `HF_HUB_OFFLINE=1` reads the local cache)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from genlab import checkpoint as ckpt
from genlab.errors import CheckpointError, ConfigError
from genlab.train import rundir
from genlab.train.runs import run_info

HUB_PREFIX = "hf:"
CARD = "README.md"


def model_card(run_dir: Path, info: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A Hugging Face model card: YAML front matter, what the model is, how to load it, its headline numbers."""
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in sorted(numbers.items())) or "| (not evaluated) | |"
    picture = "\n![samples](samples.png)\n" if (run_dir / rundir.SAMPLES / "final.png").is_file() else ""
    return f"""---
library_name: genlab
tags: [genlab, {info["family"]}, {info["model"]}, {info["data"]}]
---

# {run_dir.name}: a genlab `{info["model"]}` ({info["family"]}) model trained on `{info["data"]}`

Trained for {info["step"]} steps. Load it with genlab:

```python
import genlab
model = genlab.load("path/to/this/folder")     # or genlab.load("hf:<owner>/<name>")
x = model.sample(16)
```

## Evaluation (`eval.json`)

| metric | value |
| --- | --- |
{rows}
{picture}
The resolved training config is in `config.toml`; every convention behind the numbers is in `eval.json`.
"""


def export(run: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the model folder of a run: model.safetensors (the EMA weights when the run has them), config.toml,
    eval.json and samples.png when present, and README.md (the model card). Returns the folder.

    >>> export("runs/vae_fmnist", "exports/vae_fmnist")   # doctest: +SKIP
    """
    run_dir, out = Path(run), Path(out)
    weights = run_dir / (rundir.EMA_WEIGHTS if (run_dir / rundir.EMA_WEIGHTS).is_file() else rundir.WEIGHTS)
    ckpt.read_metadata(weights)  # a clear error for a run without (readable) weights
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; choose another folder (or pass overwrite=True / --overwrite)")
    info = run_info(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, out / rundir.WEIGHTS)
    shutil.copyfile(run_dir / rundir.CONFIG, out / rundir.CONFIG)
    metrics: dict[str, Any] = {}
    if (run_dir / "eval.json").is_file():
        shutil.copyfile(run_dir / "eval.json", out / "eval.json")
        metrics = json.loads((run_dir / "eval.json").read_text())
    if (run_dir / rundir.SAMPLES / "final.png").is_file():
        shutil.copyfile(run_dir / rundir.SAMPLES / "final.png", out / "samples.png")
    ckpt.atomic_write_text(out / CARD, model_card(run_dir, info, metrics))
    return out


def push(folder: str | os.PathLike, repo_id: str, *, private: bool = False) -> str:
    """Upload an exported folder to the Hub as the model repository `repo_id` (created when missing); returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model")
    return f"https://huggingface.co/{repo_id}"


def pull(repo_id: str, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local folder of the Hub model `repo_id` (downloaded, or from the cache; with HF_HUB_OFFLINE=1 only the cache)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ConfigError("loading from the Hugging Face Hub needs huggingface_hub: pip install huggingface_hub") from None
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir))
    except LocalEntryNotFoundError as e:
        raise CheckpointError(f"{HUB_PREFIX}{repo_id}: not in the local cache and the Hub cannot be reached ({e})") from None
    except HfHubHTTPError as e:
        raise CheckpointError(f"{HUB_PREFIX}{repo_id}: the Hub refused it ({e})") from None


def _cmd_export(a: argparse.Namespace) -> int:
    out = export(a.run, a.out, overwrite=a.overwrite)
    print(f"{a.run} -> {out} (genlab.load({str(out)!r}) reads it)")
    if a.push:
        print(f"pushed to {push(out, a.push, private=a.private)}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab export RUN OUT [--push OWNER/NAME] [--private] [--overwrite]`."""
    p = subparsers.add_parser(
        "export",
        help="write a self-contained model folder (and push it to the Hugging Face Hub)",
        description="A model folder: weights (EMA when present), config.toml, eval.json, samples.png and a model card. "
        "genlab.load reads it; `genlab sample FOLDER` samples it; genlab.load('hf:OWNER/NAME') pulls a pushed one.",
        epilog="examples:\n  genlab export runs/vae_fmnist exports/vae_fmnist\n"
        "  genlab export runs/vae_fmnist exports/vae_fmnist --push me/genlab-vae-fmnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory")
    p.add_argument("out", help="folder to write")
    p.add_argument("--push", default=None, metavar="OWNER/NAME", help="also upload to the Hugging Face Hub (needs a network and a token)")
    p.add_argument("--private", action="store_true", help="with --push: a private repository")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that is not empty")
    p.set_defaults(fn=_cmd_export)
    return p
