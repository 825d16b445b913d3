"""`genlab report`: a leaderboard of runs as one self-contained HTML page (images as data URIs, inline
CSS, no scripts) and a Markdown table with its images in `report_files/` beside it."""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from genlab import checkpoint as ckpt
from genlab import registry
from genlab.errors import CheckpointError
from genlab.modalities.base import ReportTable
from genlab.train import rundir
from genlab.train.curves import plot_curves
from genlab.train.runs import run_info

MISSING = "—"
FILES_DIR = "report_files"
# Number formats by eval.json name; anything else numeric gets DEFAULT_FORMAT.
FORMATS = {
    "fid": ".2f",
    "kid": ".4f",
    "kid_std": ".4f",
    "precision": ".3f",
    "recall": ".3f",
    "density": ".3f",
    "coverage": ".3f",
    "accuracy": ".3f",
    "bits_per_dim": ".3f",
    "seconds_per_sample": ".3g",
}
DEFAULT_FORMAT = ".4g"
PER_CLASS_ORDER = ("accuracy", "fid", "kid", "precision", "recall", "density", "coverage")
# eval.json numbers the leaderboard shows; a run's own section lists the others (nll, accuracy, mmd, ...).
LEADERBOARD_KEYS = {"step", "fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "bits_per_dim", "seconds_per_sample"}
CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1600px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 13px; }
.scroll { overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { display: inline-block; margin: 0 1.2em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
img.grid { image-rendering: pixelated; min-width: 160px; }
figcaption, .note { color: #666; font-size: 12px; }
"""


@dataclass
class RunEntry:
    """What the report shows of one run: `genlab.api.info`, its eval.json and its pictures."""

    name: str
    path: Path
    info: dict[str, Any]
    eval: dict[str, Any]
    images: list[tuple[str, Path]] = field(default_factory=list)  # (caption, file relative to the report folder)

    def get(self, key: str) -> Any:
        """An eval.json number, else what `genlab.api.info` knows under that name."""
        return self.eval.get(key, self.info.get(key))


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def format_value(key: str, v: Any) -> str:
    """One eval.json value as table text; missing or non-finite numbers read "—"."""
    if isinstance(v, str):
        return v
    x = _number(v)
    if x is None:
        return MISSING
    return str(int(x)) if isinstance(v, int) else format(x, FORMATS.get(key, DEFAULT_FORMAT))


def format_count(n: Any) -> str:
    """Parameter counts: 320, 45.6k, 1.23M."""
    x = _number(n)
    if x is None:
        return MISSING
    return f"{x:.0f}" if x < 1e3 else f"{x / 1e3:.1f}k" if x < 1e6 else f"{x / 1e6:.2f}M"


def format_duration(seconds: Any) -> str:
    """Wall-clock time: 0.0483 s, 12.3 s, 2 min 05 s, 1 h 02 min."""
    s = _number(seconds)
    if s is None:
        return MISSING
    if s < 60:
        return f"{s:.3g} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _kid(r: RunEntry) -> str:
    kid = format_value("kid", r.get("kid"))
    std = _number(r.get("kid_std"))
    return kid if kid == MISSING or std is None else f"{kid} ± {format(std, FORMATS['kid_std'])}"


def _bits_per_dim(r: RunEntry) -> str:
    bpd = format_value("bits_per_dim", r.get("bits_per_dim"))
    return f"≤ {bpd}" if bpd != MISSING and r.get("likelihood") == "bound" else bpd


def _metric(key: str) -> Callable[[RunEntry], str]:
    return lambda r: format_value(key, r.get(key))


def _domain(r: RunEntry) -> str:
    """The run's modality's own headline numbers (modes covered for the 2D mixtures, validity for molecules, ...)."""
    name = r.info.get("modality")
    if name not in registry.list_modalities():
        return MISSING
    return "; ".join(registry.modality(name).summary(r.eval, format_value)) or MISSING


def _run_name(r: RunEntry) -> str:
    return f"{r.name} (interrupted)" if r.info.get("status") == "interrupted" else r.name


# The leaderboard: (header, cell text, left-aligned text column?).
COLUMNS: list[tuple[str, Callable[[RunEntry], str], bool]] = [
    ("run", _run_name, True),
    ("family", _metric("family"), True),
    ("method", _metric("model"), True),
    ("data", _metric("data"), True),
    ("params", lambda r: format_count(r.info.get("parameters")), False),
    ("steps", lambda r: format_value("step", r.info.get("step")), False),
    ("train time", lambda r: format_duration(r.info.get("training_seconds")), False),
    ("FID ↓", _metric("fid"), False),
    ("KID ↓", _kid, False),
    ("precision ↑", _metric("precision"), False),
    ("recall ↑", _metric("recall"), False),
    ("density ↑", _metric("density"), False),
    ("coverage ↑", _metric("coverage"), False),
    ("bits/dim ↓", _bits_per_dim, False),
    ("s/sample ↓", _metric("seconds_per_sample"), False),
    ("domain metrics", _domain, True),
]
LEGEND = (
    "Sorted by FID, then (runs without FID) by bits/dim. ↓ lower is better, ↑ higher is better; "
    f"{MISSING} not measured. ≤ marks a bound on bits/dim (ELBO, IWAE-k, variational bound); "
    "see each run's conventions. KID: mean ± std over subsets."
)


def modality_tables(entries: list[RunEntry]) -> list[ReportTable]:
    """The tables each modality adds for its runs (`Modality.report_tables`), modalities in order of first appearance."""
    groups: dict[str, list[RunEntry]] = {}
    for r in entries:
        name = r.info.get("modality")
        if name in registry.list_modalities():
            groups.setdefault(name, []).append(r)
    return [t for name, rs in groups.items() for t in registry.modality(name).report_tables([(r.name, r.eval) for r in rs], format_value)]


def leaderboard_order(entries: list[RunEntry]) -> list[RunEntry]:
    """Runs with an FID first (lowest first), then runs with bits/dim (lowest first), then the rest by name."""

    def key(r: RunEntry) -> tuple:
        fid, bpd = _number(r.get("fid")), _number(r.get("bits_per_dim"))
        return (0, fid, r.name) if fid is not None else (1, bpd, r.name) if bpd is not None else (2, 0.0, r.name)

    return sorted(entries, key=key)


def per_class_table(entry: RunEntry) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a conditional run's per-class numbers (one row per class); empty when it has none."""
    rows = [c for c in entry.eval.get("per_class") or [] if isinstance(c, dict)]
    if not rows:
        return [], []
    present = {k for c in rows for k, v in c.items() if k not in ("label", "name") and _number(v) is not None}
    keys = [k for k in PER_CLASS_ORDER if k in present] + sorted(present - set(PER_CLASS_ORDER))
    header = ["label", "name", *keys]
    return header, [
        [format_value("label", c.get("label")), format_value("name", c.get("name"))] + [format_value(k, c.get(k)) for k in keys]
        for c in rows
    ]


def conventions_table(entry: RunEntry) -> list[tuple[str, str]]:
    """(key, value) pairs saying how a run's numbers were measured: eval.json's `conventions`, likelihood and bound."""
    conv = dict(entry.eval.get("conventions") or {})
    conv.update({k: entry.eval[k] for k in ("likelihood", "bound") if k in entry.eval})
    return [(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in conv.items()]


def other_numbers(entry: RunEntry) -> list[tuple[str, str]]:
    """The top-level numbers of eval.json that the leaderboard does not show (nll, accuracy, mmd, ...)."""
    return [(k, format_value(k, v)) for k, v in sorted(entry.eval.items()) if k not in LEADERBOARD_KEYS and _number(v) is not None]


def _check_run(path: Path) -> None:
    if not (path / rundir.CONFIG).is_file():
        what = "does not exist" if not path.exists() else f"is not a genlab run directory (no {rundir.CONFIG})"
        raise CheckpointError(f"{path} {what}; `genlab report` takes run directories written by `genlab train`, e.g. runs/<name>")


def _read_eval(path: Path) -> dict[str, Any]:
    f = path / "eval.json"
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f} is not valid JSON ({e}); run `genlab eval {path}` again") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{f} does not hold a JSON object; run `genlab eval {path}` again")
    return data


def _unique_name(path: Path, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.resolve().name) or "run"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _collect_images(entry: RunEntry, out_dir: Path) -> None:
    """Copy the run's sample grids and loss curves to `out_dir/report_files` (plotting curves when it has none)."""
    samples = entry.path / rundir.SAMPLES
    final = samples / "final.png"
    steps = sorted(samples.glob("step_*.png"))
    pictures = [("samples", final if final.is_file() else steps[-1] if steps else None)]
    pictures += [(kind, samples / f"{kind}.png") for kind in ("reconstructions", "interpolations")]
    pictures.append(("animation", samples / "final.gif"))  # a video run's preview clips, played in the page
    files = out_dir / FILES_DIR
    files.mkdir(parents=True, exist_ok=True)
    for kind, src in pictures:
        if src is not None and src.is_file():
            rel = Path(FILES_DIR) / f"{entry.name}_{kind}{src.suffix}"
            shutil.copyfile(src, out_dir / rel)
            entry.images.append((f"{kind} ({src.relative_to(entry.path)})", rel))
    rel = Path(FILES_DIR) / f"{entry.name}_loss.png"
    if (entry.path / "loss.png").is_file():
        shutil.copyfile(entry.path / "loss.png", out_dir / rel)
    elif plot_curves(entry.path / rundir.METRICS, out_dir / rel) is None:
        return
    entry.images.append(("loss curves", rel))


def _e(v: Any) -> str:
    return html.escape(str(v))


def _html_table(header: list[str], rows: list[list[str]], text_cols: set[int]) -> str:
    cls = lambda i: ' class="text"' if i in text_cols else ""
    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>\n" for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def _data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


MAX_PLAYERS = 10  # audio players per run (each 1 s of 16-bit audio is ~43 KB of base64)


def _audio_players(entry: RunEntry) -> str:
    """<audio> players for the WAVs a waveform preview wrote beside its spectrogram grid (samples/final/*.wav)."""
    folder = entry.path / rundir.SAMPLES / "final"
    wavs = sorted(folder.glob("*.wav"))[:MAX_PLAYERS] if folder.is_dir() else []
    players = "".join(
        f'<figure><audio controls preload="none" src="data:audio/wav;base64,{base64.b64encode(w.read_bytes()).decode("ascii")}">'
        f"</audio><figcaption>{_e(w.stem)}</figcaption></figure>\n"
        for w in wavs
    )
    return f'<div class="audio">\n{players}</div>\n' if players else ""


def render_html(title: str, entries: list[RunEntry], out_dir: Path) -> str:
    """The report page: leaderboard, then each run's pictures and per-class numbers, then conventions."""
    header = [h for h, _, _ in COLUMNS]
    text_cols = {i for i, (_, _, text) in enumerate(COLUMNS) if text}
    rows = [[f'<a href="#run-{_e(r.name)}">{_e(_run_name(r))}</a>'] + [_e(fn(r)) for _, fn, _ in COLUMNS[1:]] for r in entries]
    parts = [
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n',
        f"<style>{CSS}</style>\n</head>\n<body>\n",
        f'<h1>{_e(title)}</h1>\n<p class="note">{len(entries)} run(s); generated {datetime.now():%Y-%m-%d %H:%M} by genlab.</p>\n',
        "<h2>Leaderboard</h2>\n",
        f'<div class="scroll">\n{_html_table(header, rows, text_cols)}</div>\n',
        f'<p class="note">{_e(LEGEND)}</p>\n',
    ]
    for t in modality_tables(entries):
        parts.append(f"<h2>{_e(t.title)}</h2>\n")
        parts.append(f'<div class="scroll">\n{_html_table(t.header, [[_e(c) for c in row] for row in t.rows], {0})}</div>\n')
        if t.note:
            parts.append(f'<p class="note">{_e(t.note)}</p>\n')
    parts.append("<h2>Runs</h2>\n")
    for r in entries:
        parts.append(f'<h3 id="run-{_e(r.name)}">{_e(_run_name(r))}</h3>\n<p class="note">{_e(r.path)}</p>\n')
        for caption, rel in r.images:
            grid = ' class="grid"' if not caption.startswith("loss") else ""
            parts.append(
                f'<figure><img{grid} src="{_data_uri(out_dir / rel)}" alt="{_e(r.name)} {_e(caption)}">'
                f"<figcaption>{_e(caption)}</figcaption></figure>\n"
            )
        parts.append(_audio_players(r))
        if not r.images:
            parts.append('<p class="note">no sample grids or logged metrics.</p>\n')
        pc_header, pc_rows = per_class_table(r)
        if pc_rows:
            parts.append("<h4>Per class</h4>\n" + _html_table(pc_header, [[_e(c) for c in row] for row in pc_rows], {1}))
        numbers = other_numbers(r)
        if numbers:
            parts.append("<h4>Other numbers (eval.json)</h4>\n" + _html_table(["key", "value"], [[_e(k), _e(v)] for k, v in numbers], {0}))
    parts.append("<h2>Conventions</h2>\n")
    for r in entries:
        conv = conventions_table(r)
        parts.append(f"<h4>{_e(r.name)}</h4>\n")
        parts.append(
            _html_table(["key", "value"], [[_e(k), _e(v)] for k, v in conv], {0, 1})
            if conv
            else f'<p class="note">not evaluated (no eval.json); run `genlab eval {_e(r.path)}`.</p>\n'
        )
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    cell = lambda c: str(c).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]) + "\n"


def render_markdown(title: str, entries: list[RunEntry]) -> str:
    """The same leaderboard as Markdown, each run's pictures referenced from report_files/."""
    parts = [f"# {title}\n\n", _md_table([h for h, _, _ in COLUMNS], [[fn(r) for _, fn, _ in COLUMNS] for r in entries]), f"\n{LEGEND}\n"]
    for t in modality_tables(entries):
        parts.append(f"\n## {t.title}\n\n" + _md_table(t.header, t.rows) + (f"\n{t.note}\n" if t.note else ""))
    for r in entries:
        parts.append(f"\n## {_run_name(r)}\n\n`{r.path}`\n\n")
        parts.extend(f"![{r.name} {caption}]({rel.as_posix()})\n" for caption, rel in r.images)
        pc_header, pc_rows = per_class_table(r)
        if pc_rows:
            parts.append("\nPer class:\n\n" + _md_table(pc_header, pc_rows))
        conv = conventions_table(r)
        parts.append("\nConventions: " + ("; ".join(f"{k}: {v}" for k, v in conv) if conv else "not evaluated (no eval.json).") + "\n")
    return "".join(parts)


def write_report(runs: list[str | os.PathLike], out_dir: str | os.PathLike, *, title: str = "genlab report") -> dict[str, Path]:
    """Write `out_dir/report.html` (self-contained) and `out_dir/report.md` (+ `out_dir/report_files/`) for `runs`.

    Every path must be a run directory; each run's numbers come from its eval.json (when evaluated)
    and `genlab.api.info` (config, weights header, metrics.jsonl).

    >>> write_report(["runs/vae_fmnist", "runs/ddpm_fmnist"], "reports")  # doctest: +SKIP
    {'html': PosixPath('reports/report.html'), 'markdown': PosixPath('reports/report.md')}
    """
    paths = [Path(p) for p in runs]
    if not paths:
        raise CheckpointError("no run directories given; pass one or more, e.g. runs/<name>")
    for p in paths:  # all checked before any work is done
        _check_run(p)
    out_dir = Path(out_dir)
    taken: set[str] = set()
    entries = [RunEntry(_unique_name(p, taken), p, run_info(p), _read_eval(p)) for p in paths]
    for entry in entries:
        _collect_images(entry, out_dir)
    entries = leaderboard_order(entries)
    out = {"html": out_dir / "report.html", "markdown": out_dir / "report.md"}
    ckpt.atomic_write(out["html"], lambda tmp: Path(tmp).write_text(render_html(title, entries, out_dir), encoding="utf-8"))
    ckpt.atomic_write(out["markdown"], lambda tmp: Path(tmp).write_text(render_markdown(title, entries), encoding="utf-8"))
    return out


def _cmd_report(a: argparse.Namespace) -> int:
    out = write_report(a.runs, a.out, title=a.title)
    print(f"report -> {out['html']}\n          {out['markdown']}")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `genlab report RUN [RUN ...] [--out DIR] [--title TEXT]` on the CLI's sub-parsers."""
    r = subparsers.add_parser(
        "report",
        help="compare runs in an HTML page and a Markdown table",
        description="A leaderboard of runs (FID, KID, precision/recall, density/coverage, bits/dim, speed), their sample grids, "
        "loss curves and per-class numbers, as one self-contained HTML page and a Markdown table. "
        "Numbers come from each run's eval.json (`genlab eval RUN`); runs never evaluated show —.",
        epilog="example:\n  genlab report runs/vae_fmnist runs/ddpm_fmnist --out reports",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    r.add_argument("--out", default="reports", help="folder for report.html, report.md and report_files/ (default reports)")
    r.add_argument("--title", default="genlab report", help="page title (default 'genlab report')")
    r.set_defaults(fn=_cmd_report)
    return r
