"""Token sequences (text, SMILES as characters): decoded one per line into .txt files; the share of distinct samples,
of samples not in the test split and their mean length as sample metrics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from genlab.config import RunConfig
from genlab.modalities.base import Modality
from genlab.models.sampling import timed_samples
from genlab.registry import register_modality
from genlab.spec import DataSpec


def decode(x: torch.Tensor, vocab: tuple[str, ...]) -> list[str]:
    """Token ids (N, L) -> one string per row, cut at the first 0 (end of sequence); space-separated ids without a vocab."""
    rows = x.tolist()
    if not vocab:
        return [" ".join(map(str, row)) for row in rows]
    return ["".join(vocab[i] for i in row[: row.index(0) if 0 in row else len(row)]) for row in rows]


def write_lines(lines: list[str], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln + "\n" for ln in lines))
    return path


@register_modality("tokens")
class TokensModality(Modality):
    suffixes = (".txt", ".npz")
    headline = (("unique", "unique"), ("novel", "novel"), ("mean_length", "length"))

    def preview_count(self, requested: int) -> int:
        return 2000

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        """The decoded sequences, one per line, in a .txt file beside `path`."""
        return write_lines(decode(x, spec.vocab), Path(path).with_suffix(".txt"))

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict:
        return {"tokens": x.numpy()}

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """unique: distinct samples / samples; novel: distinct samples not in the test split / distinct samples; mean_length."""
        ec = cfg.eval
        x, _, sec = timed_samples(model, ec.n_samples, ec.seed, **(sample_kwargs or {}))
        samples = decode(x, model.spec.vocab)
        distinct = set(samples)
        seen = set(decode(test.x, model.spec.vocab))
        out = {
            "unique": len(distinct) / len(samples),
            "novel": len(distinct - seen) / len(distinct),
            "mean_length": sum(map(len, samples)) / len(samples),
            "seconds_per_sample": sec,
        }
        conv = {"n_samples": ec.n_samples, "novel": f"against the {len(seen)} distinct sequences of the {ec.split} split"}
        return out, conv
