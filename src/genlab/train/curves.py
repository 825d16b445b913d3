"""Training curves from metrics.jsonl (matplotlib PNG, written atomically: redrawn while a run trains)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from genlab.checkpoint import atomic_write


def read_metrics(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            rows.append(json.loads(line))
    return rows


def plot_curves(metrics_path: str | os.PathLike, out: str | os.PathLike, keys: list[str] | None = None) -> Path | None:
    """Plot every loss-like key (or `keys`) against the step; None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    skip = {"step", "epoch", "time", "lr", "images_per_s"}
    keys = keys or sorted({k for r in rows for k, v in r.items() if k not in skip and isinstance(v, (int, float))})
    if not rows or not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), dpi=100, squeeze=False)
    for ax, k in zip(axes[0], keys):
        pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1, marker="o" if len(pts) < 20 else None, ms=3)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    out = Path(out)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"))  # a reader never sees half a picture
    plt.close(fig)
    return out
