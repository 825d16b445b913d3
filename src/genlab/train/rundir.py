"""Run directories: create, resume or refuse — never silently overwrite what a user made — and lock them, so that
two training processes never write into one run (an flock on `.lock`, which the kernel drops when its process dies)."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Literal

from genlab.checkpoint import CONFIG, EMA_WEIGHTS, STATE, WEIGHTS, read_run_config, writing
from genlab.config import RunConfig
from genlab.errors import CheckpointError

METRICS, SAMPLES, LOCK = "metrics.jsonl", "samples", ".lock"
GENLAB_FILES = {
    CONFIG,
    WEIGHTS,
    EMA_WEIGHTS,
    STATE,
    METRICS,
    SAMPLES,
    "loss.png",
    "eval.json",
    "report.html",
    "report.md",
    "interrupted",
    "augment.json",
    "tb",
}
# Keys that may change when a run is resumed: budgets and how it runs, not what it learns.
RESUMABLE_CHANGES = {
    "train.max_steps",
    "train.max_time",
    "train.progress",
    "train.loggers",
    "train.num_threads",
    "train.device",
    "train.sample_every",
    "train.eval_every",
    "train.log_every",
    "train.ckpt_every",
    "train.ckpt_every_time",
    "eval",
}


def default_run_dir(config_path: str | os.PathLike | None, cfg: RunConfig) -> Path:
    stem = Path(config_path).stem if config_path else f"{cfg.model.name}_{cfg.data.name}"
    return Path("runs") / stem


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(old: RunConfig, new: RunConfig) -> list[str]:
    """Keys whose values differ between two configs, ignoring those a resume may change."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k in RESUMABLE_CHANGES or k.split(".")[0] in RESUMABLE_CHANGES:
            continue
        if a.get(k) != b.get(k):
            diffs.append(f"{k}: {a.get(k)!r} -> {b.get(k)!r}")
    return diffs


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / STATE).is_file() and (run_dir / WEIGHTS).is_file()


def prepare(run_dir: str | os.PathLike, cfg: RunConfig, resume: Literal["auto", "always", "never"] = "auto") -> bool:
    """Check `run_dir` against `cfg`; True when the run resumes from its checkpoint.

    A new or empty directory starts a run. A run with a checkpoint and the same config (budgets
    may change) resumes unless `resume="never"`. Anything else is refused with a message saying why.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} exists and is not a directory; choose another --run directory")
    if _entries(run_dir) and not (run_dir / CONFIG).is_file():  # refused before the lock: nothing is written into it
        foreign = sorted(p.name for p in _entries(run_dir) if p.name not in GENLAB_FILES and not p.name.startswith("."))
        raise CheckpointError(f"{run_dir} exists and is not a genlab run (holds {foreign[:5]}); choose another --run directory")
    check_writable(run_dir)
    acquire(run_dir)
    remove_stale_temp_files(run_dir)
    if not _entries(run_dir):
        if resume == "always":
            raise CheckpointError(f"cannot resume {run_dir}: it does not exist or is empty")
        return False
    if resume == "never":
        raise CheckpointError(f"run directory {run_dir} already exists; resume it (drop --fresh) or choose another --run directory")
    old = read_run_config(run_dir)
    diffs = config_differences(old, cfg)
    if diffs:
        raise CheckpointError(
            f"run directory {run_dir} holds a run with a different config ({'; '.join(diffs[:6])}); "
            "resume it with the same config or choose another --run directory"
        )
    if not has_checkpoint(run_dir):
        if resume == "always":
            raise CheckpointError(f"cannot resume {run_dir}: it has no checkpoint yet ({STATE} / {WEIGHTS} missing)")
        return False  # same config, never checkpointed: start again in place
    return True


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory that cannot be written (read-only folder or file system), before any training time is
    spent: a temp file is made in it (or in its nearest existing parent, when it does not exist yet) and removed."""
    folder = next(p for p in (run_dir, *run_dir.absolute().parents) if p.is_dir())
    try:
        fd, probe = tempfile.mkstemp(prefix=".genlab-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CheckpointError(
            f"cannot train into {run_dir}: {folder} is not writable ({e.strerror or e}); make it writable "
            f"(chmod u+w {folder}) or choose another --run directory. A read-only run can still be sampled with "
            "`genlab sample RUN --out FILE`"
        ) from None


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Delete the temp files (`.<name>.*.tmp`, see checkpoint.atomic_write) a killed run left behind; only a process
    that holds the run's lock may call this, as no other write can be in flight then. Returns the names removed."""
    stale = [p for p in run_dir.glob(".*.tmp") if any(p.name.startswith(f".{name}.") for name in GENLAB_FILES)] if run_dir.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return sorted(p.name for p in stale)


def _entries(run_dir: Path) -> list[Path]:
    """What a run directory holds besides its lock file (nothing when it does not exist)."""
    return [p for p in run_dir.iterdir() if p.name != LOCK] if run_dir.is_dir() else []


_held: dict[Path, int] = {}  # run directories this process holds the lock of: resolved path -> file descriptor


def acquire(run_dir: str | os.PathLike) -> None:
    """Lock `run_dir` for this process (creating it), or refuse with a CheckpointError naming the process that holds it.

    The lock is an exclusive `flock` on `run_dir/.lock`, which records the holder's PID, host and start time. The
    kernel drops an flock when its process ends in any way (SIGKILL and power cuts included), so a lock file left
    by a dead process is taken over without asking. A process that holds the lock may acquire it again.
    """
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    if key in _held:
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not locked there
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "a process that has not written its PID yet"
        os.close(fd)
        raise CheckpointError(
            f"run directory {run_dir} is in use by another genlab process ({holder}); wait for it to finish, "
            "stop it (Ctrl-C saves its checkpoint), or choose another --run directory"
        ) from None
    try:
        with writing(run_dir / LOCK):  # a full disk is refused here, before any training time is spent
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = fd


def release(run_dir: str | os.PathLike) -> None:
    """Let go of `run_dir`'s lock (a no-op when this process does not hold it). The lock file stays: deleting it
    would race with a process that has just opened it."""
    fd = _held.pop(Path(run_dir).resolve(), None)
    if fd is not None:
        os.close(fd)
