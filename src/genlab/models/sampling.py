"""Seeded, batched sampling of any GenerativeModel: the one place where labels are balanced and checked and the
batches are cut, used by the metrics, the modalities, the apps and the public API."""

from __future__ import annotations

import sys
import time
from typing import Any

import torch

from genlab.errors import ConfigError
from genlab.models.base import GenerativeModel


def check_labels(model: GenerativeModel, labels: torch.Tensor | list[int] | None, n: int) -> torch.Tensor | None:
    """`labels` as a (n,) LongTensor (one value is repeated), checked against the model's classes; balanced labels
    0..K-1, 0, ... for a class-conditional model when None."""
    if labels is None:
        return torch.arange(n) % model.spec.num_classes if model.conditional else None
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.numel() == 1:
        labels = labels.reshape(1).expand(n).clone()
    if len(labels) != n:
        raise ConfigError(f"labels: expected {n} labels (or one), got {len(labels)}")
    if model.spec.num_classes and (labels.min() < 0 or labels.max() >= model.spec.num_classes):
        raise ConfigError(f"labels: expected values in 0..{model.spec.num_classes - 1}")
    return labels


@torch.no_grad()
def sample_seeded(
    model: GenerativeModel,
    n: int,
    *,
    seed: int = 0,
    labels: torch.Tensor | list[int] | None = None,
    batch_size: int = 500,
    progress: bool = False,
    **sample_kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`n` samples (on the CPU, in data space) and their labels, in batches, reproducible under `seed`. With
    `progress`, a bar with an ETA, and a line saying how long it will take when the first batch says over a minute.

    >>> x, y = sample_seeded(model, 1000, seed=0)   # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if n < 1:
        raise ConfigError(f"n: expected a positive number of samples, got {n}")
    labels = check_labels(model, labels, n)
    g = torch.Generator().manual_seed(seed)
    out = []
    bar = tqdm(total=n, unit="sample", desc=f"sampling {n}", leave=False, disable=not progress)
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        lab = None if labels is None else labels[start : start + batch_size].to(model.device)
        # Per-example inputs (a predictor's context, a super-resolution model's low-res images) are cut like the labels.
        kw = {k: v[start : start + batch_size] if torch.is_tensor(v) and v.dim() and len(v) == n else v for k, v in sample_kwargs.items()}
        out.append(model.sample(min(batch_size, n - start), labels=lab, generator=g, **kw).cpu())
        bar.update(len(out[-1]))
        if progress and start == 0 and n > batch_size:
            total = (time.perf_counter() - t0) * n / len(out[-1])
            if total > 60:
                bar.write(f"genlab: sampling {n} from the {model.family} model will take about {total / 60:.0f} min", file=sys.stderr)
    bar.close()
    return torch.cat(out), labels


def timed_samples(
    model: GenerativeModel, n: int, seed: int, progress: bool = True, **sample_kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    """`sample_seeded` (with a progress bar by default) and the seconds it took per sample."""
    t0 = time.perf_counter()
    x, y = sample_seeded(model, n, seed=seed, progress=progress, **sample_kwargs)
    return x, y, (time.perf_counter() - t0) / n
