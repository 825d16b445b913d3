"""Checkpoints: weights as safetensors with genlab metadata, trainer state as a torch file of tensors and plain
values only (read with `weights_only=True`: no pickled code ever runs), all written atomically (temp file + fsync
+ rename) so a crash never leaves a half-written file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from genlab.config import RunConfig, build_run_config, load_toml
from genlab.errors import CheckpointError, StorageError

_UMASK = os.umask(0)
os.umask(_UMASK)

FORMAT = "2"  # bumped when the layout of a checkpoint changes; older formats get a clear error
# Format 2 stores the trainer state as tensors and plain values (format 1 pickled numpy's RNG state); weights did not change.
WEIGHTS_FORMATS = ("1", "2")
# Seconds atomic_write sleeps between writing a file and renaming it over the old one: a test hook for crash tests.
PAUSE_ENV = "GENLAB_TEST_PAUSE_IN_WRITE"

# The files of a run directory that hold what a model needs to be rebuilt (genlab.train.rundir has the rest).
CONFIG, WEIGHTS, EMA_WEIGHTS, STATE = "config.toml", "model.safetensors", "ema.safetensors", "state.pt"


def read_run_config(run_dir: str | os.PathLike) -> RunConfig:
    """The resolved config of a run directory; a clear error when it is not one."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{run_dir} is not a genlab run directory (no {CONFIG}); train one with `genlab train CONFIG --run {run_dir}`"
        )
    return build_run_config(load_toml(path))


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call `write(tmp_path)`, fsync it, then rename over `path` in one step. A write that fails (a full disk, a
    read-only or deleted folder) raises a StorageError naming `path` and leaves `path` as it was, the temp file removed."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if os.environ.get(PAUSE_ENV):
            time.sleep(float(os.environ[PAUSE_ENV]))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        failure = storage_error(e, path)  # before the temp file goes: a full disk is measured with it still there
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if failure is not None:
            raise failure from e
        raise


def storage_error(e: BaseException, path: str | os.PathLike) -> StorageError | None:
    """`e`, raised while writing `path`, as one clear line when the machine is at fault (a full disk, a read-only or
    deleted folder); None for other errors. Writers that are not Python's own (safetensors, torch.save) report a full
    disk in their own words, so for them a folder with less than 1 MiB free counts as full."""
    if isinstance(e, StorageError):
        return e
    path = Path(path)
    code = e.errno if isinstance(e, OSError) else None
    if code is None and isinstance(e, Exception):
        text = str(e)
        if "No space left" in text or "os error 28" in text:
            code = errno.ENOSPC
        else:
            try:
                full = shutil.disk_usage(path.parent).free < 1 << 20
            except OSError:
                full = False
            code = errno.ENOSPC if full else None
    if code in (errno.ENOSPC, errno.EDQUOT):
        head = f"{'no space left on device' if code == errno.ENOSPC else 'disk quota exceeded'} while writing {path}"
        advice = "free some space (or choose a folder on another disk) and try again"
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        head = f"cannot write {path}: {os.strerror(code).lower()} (a read-only folder?)"
        advice = f"make {path.parent} writable or choose another folder"
    elif code == errno.ENOENT and not path.parent.is_dir():
        head = f"cannot write {path}: the folder {path.parent} was deleted while genlab was writing into it"
        advice = "nothing was written"
    else:
        return None
    err = StorageError(f"{head}; {advice}")
    err.errno, err.filename, err.head = code, str(path), head  # `head` without the advice, for callers that know better
    return err


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """A block that writes `path` in place (an append): a full disk, a read-only or deleted folder raise storage_error's line."""
    try:
        yield
    except OSError as e:
        failure = storage_error(e, path)
        if failure is None:
            raise
        raise failure from e


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def run_metadata(cfg: RunConfig, spec: Any, step: int) -> dict[str, Any]:
    """The header every run's weights carry: model name, optimiser step, the data spec (a DataSpec) and the whole config, from
    which `genlab.load` rebuilds the model without the run's config.toml."""
    return {"model": cfg.model.name, "step": int(step), "spec": spec.to_dict(), "config": cfg.to_dict()}


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
    if meta["genlab_format"] not in WEIGHTS_FORMATS:
        raise CheckpointError(_format_message(path, meta["genlab_format"], WEIGHTS_FORMATS))
    return meta


def _format_message(path: Path, found: Any, readable: tuple[str, ...]) -> str:
    newer = isinstance(found, str) and found.isdigit() and int(found) > max(int(f) for f in readable)
    hint = "upgrade genlab (pip install -U genlab) to read it" if newer else "it was not written by a genlab this one can read"
    return f"{path} has checkpoint format {found!r}, this genlab reads format {' or '.join(readable)}: {hint}"


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
    """The trainer state: tensors, numbers, strings, None and lists / tuples / dicts of them (nothing else, so
    that `load_state` can read it with `weights_only=True`)."""
    atomic_write(path, lambda tmp: torch.save({"genlab_format": FORMAT, **state}, tmp))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """A trainer state written by `save_state`, read with `weights_only=True`: a file that carries anything but
    tensors and plain values (a pickle with code in it) is refused before any of it runs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no trainer state at {path}: the run has no checkpoint yet (train it first) or the path is wrong")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is cut short or not ours
        raise CheckpointError(
            f"{path} cannot be read (truncated or corrupt?): it is not the zip archive torch.save writes; "
            "resume from a good copy or start a new run directory"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(_unsafe_message(path)) from None
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise CheckpointError(
            f"{path} cannot be read (truncated or corrupt?): {e}; resume from a good copy or start a new run directory"
        ) from None
    if not isinstance(state, dict) or "genlab_format" not in state:
        raise CheckpointError(f"{path} is a torch file but not a genlab trainer state (no genlab_format); it belongs to another program")
    if state["genlab_format"] != FORMAT:
        raise CheckpointError(_format_message(path, state["genlab_format"], (FORMAT,)))
    return state


def _unsafe_message(path: Path) -> str:
    """Why a trainer state was refused: the Python objects it would have created, found without running any."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not even a readable archive: say so without guessing
        found = []
    if found and all(name.startswith(("numpy.", "_codecs.")) for name in found):
        return (
            f"{path} is a trainer state from a genlab before checkpoint format {FORMAT} (it pickles numpy objects, which "
            "this genlab no longer unpickles); its weights still load (genlab.load, genlab sample / eval), but the run "
            "cannot be resumed by this genlab: finish it with the genlab that wrote it, or start a new run directory"
        )
    objects = f" ({', '.join(found[:5])})" if found else ""
    return (
        f"{path} carries pickled Python objects{objects} besides tensors and plain values; it is refused, because loading it "
        "could run code. genlab never writes such files: delete it and resume from a checkpoint you trust, or start a new run directory"
    )


def require(state: dict[str, Any], key: str, path: str | os.PathLike, expected: str, ok: Any) -> Any:
    """`state[key]` when `ok(value)` holds, else a CheckpointError naming the field, the file and what was expected."""
    if key not in state:
        raise CheckpointError(f"{path}: the trainer state has no {key!r} field (expected {expected}); the file is damaged or not genlab's")
    value = state[key]
    try:
        good = bool(ok(value))
    except Exception:
        good = False
    if not good:
        shown = repr(value) if isinstance(value, (int, float, str, type(None))) else type(value).__name__
        raise CheckpointError(
            f"{path}: field {key!r} of the trainer state is {shown[:80]}, expected {expected}; the file is damaged or not genlab's"
        )
    return value
