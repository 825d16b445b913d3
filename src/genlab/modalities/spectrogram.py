"""Spectrogram images of audio (genlab.data.audio_spectrogram): learned by image models, heard and scored as sound.

Samples (N, 1, n_mels, frames) are turned back into clips by Griffin-Lim with the data set's STFT (kept in the
DataSpec's params), then written, previewed and scored exactly as waveforms are: the same classifier, Inception
Score, FID / KID and conditional accuracy, against the real test clips (not their inverted spectrograms), so the loss
of phase counts against the model. `reference_inverted` adds the real test spectrograms inverted the same way: the
ceiling of the representation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genlab import registry
from genlab.config import RunConfig
from genlab.data.audio_spectrogram import MelParams, mel_to_waveform
from genlab.errors import DataError
from genlab.metrics.audio import accuracy, classifier_outputs, inception_score
from genlab.metrics.fid import fid
from genlab.modalities.base import Modality
from genlab.modalities.waveform import WaveformModality
from genlab.registry import register_modality
from genlab.spec import DataSpec


@register_modality("spectrogram")
class SpectrogramModality(WaveformModality):
    """Log-mel images (N, 1, n_mels, frames) in [-1, 1]. `genlab sample --out` writes WAVs (a folder or .wav, inverted
    by Griffin-Lim), a .png spectrogram grid with the WAVs beside it, or .npz (`mel` images, `audio` clips,
    `sample_rate`, `labels`)."""

    suffixes: ClassVar[tuple[str, ...]] = ("", ".wav", ".npz", ".png")

    def clips_of(self, x: torch.Tensor, spec: DataSpec) -> torch.Tensor:
        """Mel images -> clips (N, 1, length) by the pseudo-inverse mel filters and fast Griffin-Lim (seeded phases)."""
        if x.ndim != 4 or x.shape[1] != 1:
            raise DataError(f"spectrogram samples are images (N, 1, n_mels, frames); got shape {tuple(x.shape)}")
        return mel_to_waveform(x.detach().float().cpu(), MelParams.from_spec(spec))

    def real_clips(self, data: Any, cfg: RunConfig, split: str) -> torch.Tensor:
        """The recorded clips behind the data set's images (`waves`); a subset made by data.n_train / n_test is matched
        to the first clips of the full split, which it is."""
        waves = getattr(data, "waves", None)
        if waves is None or len(waves) != len(data):
            waves = registry.dataset(cfg.data.name)(cfg.data, split).waves[: len(data)]
        return waves

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict[str, np.ndarray]:
        clips = self.clips_of(x, spec)
        return {"mel": x.detach().float().cpu().numpy(), **super().arrays(clips, spec)}

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        """The waveform preview of the inverted clips: a log-mel grid of what is heard, and the WAVs beside it."""
        return super().preview(self.clips_of(x, spec), path, spec=spec, labels=labels, reference=reference)

    def write(self, x: torch.Tensor, labels: torch.Tensor | None, path: str | os.PathLike, spec: DataSpec) -> Path:
        path = Path(path)
        if path.suffix in (".png", ".npz"):
            return Modality.write(self, x, labels, path, spec)  # preview / arrays convert the images themselves
        return super().write(self.clips_of(x, spec), labels, path, spec)

    def extra_references(
        self, net: Any, f_test: np.ndarray, rate: int, spec: DataSpec, cfg: RunConfig, test: Any, conv: dict
    ) -> dict[str, Any]:
        """`reference_inverted`: the waveform metrics of the real test images inverted the same way as samples (what a
        perfect model of the images would score), against the real clips' features."""
        n = min(len(test), cfg.eval.n_samples)
        pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(cfg.eval.seed))[:n]
        f_inv, l_inv = classifier_outputs(net, self.clips_of(test.x[pick], spec), rate)
        inv: dict[str, Any] = {"inception_score": inception_score(l_inv), "fid": fid(f_test, f_inv)}
        if test.y is not None:
            inv["accuracy"] = accuracy(l_inv, test.y[pick])
        conv["reference_inverted"] = (
            f"{n} real test spectrograms inverted by Griffin-Lim ({MelParams.from_spec(spec).griffin_lim_iters} iterations)"
        )
        conv["inversion"] = "pseudo-inverse mel filters, fast Griffin-Lim (momentum 0.99, seeded phases), peak-normalised"
        return {"reference_inverted": inv}
