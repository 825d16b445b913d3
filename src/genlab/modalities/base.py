"""The Modality contract: what depends on the kind of data and on nothing else — sample-quality metrics, the sample
writer and the preview picture. A DataSpec names its modality; the harness, the trainer and the CLI ask it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genlab import registry
from genlab.checkpoint import atomic_write
from genlab.config import RunConfig
from genlab.errors import ConfigError
from genlab.spec import DataSpec


@dataclass(frozen=True)
class ReportTable:
    """A table a modality adds to `genlab report`: its runs side by side with the field's published numbers."""

    title: str
    header: list[str]
    rows: list[list[str]]  # cells as text; the first column names the row
    note: str = ""


class Modality:
    """Base class of a registered modality (`@register_modality("image")`).

    A subclass overrides what its data need:
      - `sample_metrics(model, cfg, test, sample_kwargs) -> (numbers, conventions)`: the domain's sample-quality
        metrics against the test split (FID for images, MMD and mode coverage for 2D points, ...);
      - `write(x, labels, path, spec) -> Path`: a sample file in one of `suffixes`;
      - `preview(x, path, spec=..., labels=..., reference=...) -> Path`: the picture (or listing) shown during
        training, in reports and in the studio; `preview_count(n)` says how many samples it wants;
      - `headline`: the eval.json keys a report shows for this kind of data beside the shared columns;
      - `report_tables(runs, fmt) -> [ReportTable]`: the domain's own comparison tables for a report of its runs
        (the MOSES table beside the published baselines for molecules); none by default.
    """

    name: ClassVar[str] = ""
    suffixes: ClassVar[tuple[str, ...]] = (".npz",)
    headline: ClassVar[tuple[tuple[str, str], ...]] = ()  # (eval.json key, label) of the domain's numbers for reports

    def summary(self, result: dict[str, Any], fmt: Any = lambda key, v: f"{v:.4g}") -> list[str]:
        """ "label value" for each `headline` number present in an eval.json `result` (formatted by `fmt(key, value)`)."""
        return [f"{label} {fmt(key, result[key])}" for key, label in self.headline if isinstance(result.get(key), (int, float))]

    def report_tables(self, runs: list[tuple[str, dict[str, Any]]], fmt: Any = lambda key, v: f"{v:.4g}") -> list[ReportTable]:
        """Tables comparing `runs` ((name, eval.json) of this modality's runs, in report order); none by default."""
        return []

    def preview_samples(
        self, model: Any, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, reference: Any = None
    ) -> torch.Tensor:
        """The samples a preview shows; a modality whose models need inputs (a video predictor's given frames) takes
        them from `reference`, the test split."""
        return model.sample(n, labels=labels, generator=generator)

    def preview_count(self, requested: int) -> int:
        """How many samples a preview shows, given the run's `train.n_samples`."""
        return requested

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        raise NotImplementedError(f"the {self.name!r} modality has no preview")

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """(numbers, conventions) of the model's samples against `test`; none by default."""
        return {}, {}

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict[str, np.ndarray]:
        """The arrays of an .npz sample file (labels are added by `write`)."""
        return {"samples": x.float().numpy()}

    def write(self, x: torch.Tensor, labels: torch.Tensor | None, path: str | os.PathLike, spec: DataSpec) -> Path:
        """Write samples to `path`: .npz (the modality's arrays and `labels`), or the preview's own suffix."""
        path = Path(path)
        if path.suffix not in self.suffixes:
            raise ConfigError(f"--out {path}: expected a {' or '.join(self.suffixes)} file name for {self.name} samples")
        if path.suffix != ".npz":
            return self.preview(x, path, spec=spec, labels=labels)
        arrays = self.arrays(x, spec)
        if labels is not None:
            arrays["labels"] = labels.numpy()

        def save(tmp: str) -> None:
            with open(tmp, "wb") as f:  # given a name, numpy would add ".npz" to the temp file's
                np.savez_compressed(f, **arrays)

        atomic_write(path, save)
        return path


def modality_of(spec: DataSpec) -> Modality:
    """The registered modality a data spec names."""
    return registry.modality(spec.modality)
