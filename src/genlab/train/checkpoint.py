"""Checkpoints: weights as safetensors with genlab metadata, trainer state as a torch file, all
written atomically (temp file + fsync + rename) so a crash never leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from genlab.errors import CheckpointError

_UMASK = os.umask(0)
os.umask(_UMASK)

FORMAT = "1"  # bumped when the layout of a checkpoint changes; older formats get a clear error


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call `write(tmp_path)`, fsync it, then rename over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def save_weights(path: str | os.PathLike, module: torch.nn.Module, metadata: dict[str, Any]) -> None:
    """A module's state dict as safetensors; `metadata` (JSON-able values) rides in the header."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}
    meta = {"genlab_format": FORMAT, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The genlab header of a weights file; a clear error if it is missing, truncated or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}: the run has no checkpoint yet (train it first) or the path is wrong")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from None
    if "genlab_format" not in meta:
        raise CheckpointError(f"{path} is a safetensors file but not a genlab checkpoint (no genlab_format in its header)")
    if meta["genlab_format"] != FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {meta['genlab_format']}, this genlab reads format {FORMAT}")
    return meta


def load_weights(path: str | os.PathLike, module: torch.nn.Module) -> dict[str, str]:
    """Load weights into `module` (strict); returns the header metadata."""
    meta = read_metadata(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read the tensors (truncated or corrupt?): {e}") from None
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path} does not fit this model: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in state.items():
        if v.shape != own[k].shape:
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}")
    module.load_state_dict(state)
    return meta


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save({"genlab_format": FORMAT, **state}, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"no trainer state at {path}") from None
    except Exception as e:  # torch raises several types for a truncated zip
        raise CheckpointError(f"{path} cannot be read (truncated or corrupt?): {e}") from None
    if not isinstance(state, dict) or state.get("genlab_format") != FORMAT:
        raise CheckpointError(f"{path} is not a genlab trainer state of format {FORMAT}")
    return state
