"""The errors genlab raises on bad input: each says what was wrong and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GenlabError(Exception):
    """Base class: an error the user can fix; the CLI prints it without a traceback."""


class ConfigError(GenlabError, ValueError):
    """A config key or value is wrong."""


class DataError(GenlabError):
    """A dataset is missing, unreadable or of the wrong shape."""


class CheckpointError(GenlabError):
    """A run directory or checkpoint is missing, truncated or not genlab's."""


class TrainingError(GenlabError):
    """Training had to stop (non-finite loss, divergence)."""


class StorageError(GenlabError, OSError):
    """A file could not be written: the disk is full, the folder is read-only or was deleted (`errno` says which)."""

    def __str__(self) -> str:  # the message alone, not OSError's "[Errno N] strerror: filename"
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """' Did you mean: a, b?' for the closest valid names, or the full list when none is close."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    if close:
        return f" Did you mean: {', '.join(close)}?"
    return f" Valid: {', '.join(valid)}." if valid else ""


def unknown(kind: str, name: str, valid: Iterable[str]) -> ConfigError:
    """The error for an unknown registry name or config key."""
    return ConfigError(f"unknown {kind} {name!r}.{did_you_mean(name, valid)}")
