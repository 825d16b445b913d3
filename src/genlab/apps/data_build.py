"""`genlab data build NAME`: build a data set that is made offline by script (spoken_digits from Debian's recordings and
speech synthesisers, notes rendered with fluidsynth) into the data folder ($GENLAB_DATA/<name> or ~/.cache/genlab/<name>)."""

from __future__ import annotations

import argparse
import json
import sys

from genlab.data.audio import BUILDERS, DIGIT_PROFILES, data_home
from genlab.errors import ConfigError


def build(name: str, dest: str | None = None, *, profile: str = "full", workers: int = 2, quiet: bool = False) -> dict:
    """Build data set `name` into `dest` (default its data folder); the manifest (sizes, SHA-256, seconds)."""
    if name not in BUILDERS:
        raise ConfigError(f"genlab data build {name}: expected one of {', '.join(sorted(BUILDERS))}")
    builder = BUILDERS[name]
    folder = dest or data_home("notes" if name == "notes" else "spoken_digits")
    kw = {}
    if name != "notes" and not quiet:
        kw["progress"] = lambda i, n: (
            print(f"\r{i}/{n} clips", end="" if i < n else "\n", file=sys.stderr, flush=True) if i % 200 == 0 or i == n else None
        )
    return builder(folder, profile=profile, workers=workers, **kw)


def _cmd_build(a: argparse.Namespace) -> int:
    manifest = build(a.name, a.dest, profile=a.profile, workers=a.workers)
    print(
        json.dumps(
            {
                k: manifest[k]
                for k in ("name", "profile", "sample_rate", "clip_seconds", "sizes", "speakers", "build_seconds")
                if k in manifest
            }
        )
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `genlab data build NAME [--dest DIR] [--profile full|tiny] [--workers N]`."""
    p = subparsers.add_parser("data", help="build data sets made offline by script", description=__doc__)
    sub = p.add_subparsers(dest="data_command", required=True)
    b = sub.add_parser(
        "build",
        help="build a data set into the data folder",
        description="Build a data set into $GENLAB_DATA/<name> (else ~/.cache/genlab/<name>): train.npz, test.npz, manifest.json.",
        epilog="examples:\n  genlab data build spoken_digits\n  genlab data build notes --workers 2\n"
        "  genlab data build spoken_digits --profile tiny --dest /tmp/digits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("name", choices=sorted(BUILDERS), help="the data set")
    b.add_argument("--dest", default=None, help="folder to build into (default: the data folder genlab loads from)")
    b.add_argument("--profile", default="full", choices=sorted(DIGIT_PROFILES), help="full (default) or tiny (a smoke test)")
    b.add_argument("--workers", type=int, default=2, help="synthesiser processes at a time (default 2)")
    b.set_defaults(fn=_cmd_build)
    return p
