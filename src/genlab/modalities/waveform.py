"""Waveforms (mono clips 1 x T in [-1, 1]): classifier-based scores as for SC09 (Donahue et al. 2019; Inception Score,
FID / KID, conditional accuracy) and YIN pitch accuracy for notes; WAV files, log-mel spectrogram grids and .npz."""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genlab import registry
from genlab.config import RunConfig
from genlab.data.audio import log_mel, note_to_midi, write_wav
from genlab.errors import ConfigError, DataError
from genlab.metrics.audio import accuracy, classifier_outputs, inception_score, pitch_accuracy, yin_pitch
from genlab.metrics.feature_nets import get_feature_net
from genlab.metrics.feature_nets import weights_sha256 as net_hash
from genlab.metrics.fid import fid
from genlab.metrics.kid import kid
from genlab.modalities.base import Modality
from genlab.models.sampling import timed_samples
from genlab.registry import register_modality
from genlab.spec import DataSpec

PREVIEW_CLIPS = 20


def sample_rate_of(spec: DataSpec, data: Any = None) -> int:
    """The clips' sample rate: the spec's `sample_rate`, else the data set's, else one-second clips (rate = T: a run
    saved before DataSpec carried the rate)."""
    return int(spec.sample_rate or getattr(data, "sample_rate", 0) or spec.shape[-1])


def label_names(spec: DataSpec, labels: torch.Tensor | None, n: int) -> list[str]:
    """A file-name-safe name per clip: its class name (or number), "" when unlabelled."""
    if labels is None:
        return [""] * n
    names = spec.class_names
    out = [names[int(k)] if 0 <= int(k) < len(names) else str(int(k)) for k in labels]
    return [re.sub(r"[^A-Za-z0-9#+-]+", "_", s) for s in out]


def write_clips(x: torch.Tensor, labels: torch.Tensor | None, folder: Path, spec: DataSpec, prefix: str = "") -> list[Path]:
    """One 16-bit WAV per clip in `folder`: <prefix><index>[_<label>].wav, index zero-padded."""
    rate = sample_rate_of(spec)
    width = max(2, len(str(len(x) - 1)))
    names = label_names(spec, labels, len(x))
    return [
        write_wav(folder / f"{prefix}{i:0{width}d}{'_' + name if name else ''}.wav", x[i].reshape(-1), rate) for i, name in enumerate(names)
    ]


def spectrogram_grid(x: torch.Tensor, path: Path, sample_rate: int, titles: list[str], ncol: int | None = None) -> Path:
    """A PNG grid of log-mel spectrograms (64 mel bands, 0 .. 80 dB below each clip's loudest bin), one panel per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_fft = 1 << max(6, round(math.log2(sample_rate * 0.032)))  # ~32 ms windows
    mel = log_mel(x.reshape(len(x), -1).float(), sample_rate, n_fft=n_fft, hop=n_fft // 4, n_mels=64).numpy()
    ncol = ncol or max(1, math.ceil(math.sqrt(len(x))))
    nrow = math.ceil(len(x) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.8 * ncol, 1.4 * nrow), squeeze=False)
    seconds = x.shape[-1] / sample_rate
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k < len(x):
            ax.imshow(mel[k], origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0, extent=(0, seconds, 0, 64))
            if titles[k]:
                ax.set_title(titles[k], fontsize=7)
    fig.tight_layout(pad=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def requested_pitch(spec: DataSpec, labels: torch.Tensor | None) -> np.ndarray | None:
    """MIDI numbers asked for by `labels` when the class names are note names ("C4"), else None."""
    midi = [note_to_midi(s) for s in spec.class_names]
    if labels is None or not midi or any(m is None for m in midi):
        return None
    return np.array([midi[int(k)] for k in labels], np.float64)


@register_modality("waveform")
class WaveformModality(Modality):
    """Mono clips (N, 1, T) in [-1, 1]. `genlab sample --out clips/` (a folder: one WAV per clip, label in the name),
    `--out x.wav` (x.wav for one clip, x_<index>_<label>.wav for several), `--out x.npz` (float32 `audio` (N, T),
    `sample_rate`, `labels`) or `--out x.png` (a spectrogram grid, WAVs in the folder beside it)."""

    suffixes: ClassVar[tuple[str, ...]] = ("", ".wav", ".npz", ".png")
    headline: ClassVar[tuple[tuple[str, str], ...]] = (
        ("inception_score", "IS"),
        ("fid", "FID"),
        ("accuracy", "accuracy"),
        ("pitch_accuracy", "pitch accuracy"),
    )

    def summary(self, result: dict[str, Any], fmt: Any = lambda key, v: f"{v:.4g}") -> list[str]:
        """ "label value (real value)": each headline number beside the real test clips' own (eval.json `reference`)."""
        ref = result.get("reference") or {}
        real = lambda key: f" (real {fmt(key, ref[key])})" if isinstance(ref.get(key), (int, float)) else ""
        return [f"{label} {fmt(key, result[key])}{real(key)}" for key, label in self.headline if isinstance(result.get(key), (int, float))]

    def preview_count(self, requested: int) -> int:
        return min(requested, PREVIEW_CLIPS)

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict[str, np.ndarray]:
        return {"audio": x.reshape(len(x), -1).float().numpy(), "sample_rate": np.array(sample_rate_of(spec))}

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        """<path>.png: a grid of log-mel spectrograms (one row per class for up to 16 classes), and the clips as WAVs in
        the folder <path without .png>/ beside it, which reports embed as audio players."""
        path = Path(path)
        if path.suffix != ".png":
            raise ConfigError(f"{path}: a waveform preview is a .png spectrogram grid")
        if x.ndim != 3 or x.shape[1] != 1:
            raise DataError(f"waveform previews take mono clips (N, 1, T); got shape {tuple(x.shape)}")
        x = x.detach().float().cpu()
        folder = path.with_suffix("")
        for old in folder.glob("*.wav") if folder.is_dir() else ():
            old.unlink()  # the preview of an earlier step of this run
        write_clips(x, labels, folder, spec)
        ncol = None
        if labels is not None and 0 < spec.num_classes <= 16 and len(x) % spec.num_classes == 0:
            ncol = spec.num_classes
        return spectrogram_grid(x, path, sample_rate_of(spec, reference), label_names(spec, labels, len(x)), ncol)

    def write(self, x: torch.Tensor, labels: torch.Tensor | None, path: str | os.PathLike, spec: DataSpec) -> Path:
        """A folder (a path without a suffix, or an existing folder): one WAV per clip; .wav: the file itself for one clip,
        <stem>_<index>_<label>.wav beside it for several (the returned path is then the folder); .npz; .png preview."""
        path = Path(path)
        x = x.detach().float().cpu()
        if path.is_dir() or path.suffix == "":
            write_clips(x, labels, path, spec)
            return path
        if path.suffix == ".wav":
            if len(x) == 1:
                return write_wav(path, x[0].reshape(-1), sample_rate_of(spec))
            write_clips(x, labels, path.parent, spec, prefix=f"{path.stem}_")
            return path.parent
        return super().write(x, labels, path, spec)

    def clips_of(self, x: torch.Tensor, spec: DataSpec) -> torch.Tensor:
        """Samples of this modality as mono clips (N, 1, T): here they already are."""
        return x

    def real_clips(self, data: Any, cfg: RunConfig, split: str) -> torch.Tensor:
        """The real clips of a data set (split `split` of cfg.data) that generated clips are scored against."""
        return data.x

    def extra_references(
        self, net: Any, f_test: np.ndarray, rate: int, spec: DataSpec, cfg: RunConfig, test: Any, conv: dict
    ) -> dict[str, Any]:
        """More reference numbers for eval.json, given the classifier and the real test clips' features: none here."""
        return {}

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """eval.n_samples clips scored by the data set's audio classifier (eval.features overrides it): inception_score,
        fid and kid against the test split's features, accuracy of conditional samples; pitch_accuracy by YIN when the
        classes are notes. `reference` holds the same numbers for real clips: the test clips' inception_score, accuracy
        and pitch_accuracy, and the fid / kid of as many training clips (seeded draw; other speakers) against the test clips."""
        ec = cfg.eval
        x, y, sec = timed_samples(model, ec.n_samples, ec.seed, **(sample_kwargs or {}))
        t0 = time.perf_counter()
        x = self.clips_of(x, model.spec)
        sec += (time.perf_counter() - t0) / max(1, len(x))  # turning samples into sound is part of generating it
        real_test = self.real_clips(test, cfg, "test")
        rate = sample_rate_of(model.spec, test)
        if x.ndim != 3 or x.shape[1] != 1:
            raise DataError(f"samples have shape {tuple(x.shape[1:])}; waveform metrics need mono clips (1, T)")
        out: dict[str, Any] = {"seconds_per_sample": sec, "audio_seconds_per_second": x.shape[-1] / rate / sec if sec > 0 else None}
        ref: dict[str, Any] = {}
        conv: dict[str, Any] = {"n_samples": len(x), "sample_rate": rate, "reference": f"{cfg.data.name}/{ec.split}", "seed": ec.seed}
        midi = requested_pitch(model.spec, y)
        if midi is not None:
            out["pitch_accuracy"] = pitch_accuracy(yin_pitch(x, rate), midi)
            real = requested_pitch(model.spec, test.y)
            ref["pitch_accuracy"] = pitch_accuracy(yin_pitch(real_test, rate), real) if real is not None else None
            conv["pitch_accuracy"] = "YIN (threshold 0.15, 64 ms frames, 0.05-0.6 s, median) within 0.5 semitone of the requested note"
        name = ec.features or registry.features_for_dataset(cfg.data.name)
        if name is None:
            warnings.warn(f"no audio classifier for {cfg.data.name}; set eval.features for IS / FID / KID / accuracy")
            out["reference"] = ref
            return out, conv
        net = get_feature_net(name)
        feats, logits = classifier_outputs(net, x, rate)
        f_test, l_test = classifier_outputs(net, real_test, rate)
        out["inception_score"] = inception_score(logits)
        out["fid"] = fid(f_test, feats)
        sub = min(1000, len(feats), len(f_test))
        out["kid"], out["kid_std"] = kid(f_test, feats, subset_size=sub, seed=ec.seed)
        if y is not None:
            out["accuracy"] = accuracy(logits, y)
        ref["inception_score"] = inception_score(l_test)
        if test.y is not None:
            ref["accuracy"] = accuracy(l_test, test.y)
        train = self.real_clips(registry.dataset(cfg.data.name)(cfg.data, "train"), cfg, "train")
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(ec.seed))[: len(x)]  # the split is stored by speaker
        f_train, _ = classifier_outputs(net, train[pick], rate)
        ref["fid"] = fid(f_test, f_train)
        ref["kid"] = kid(f_test, f_train, subset_size=min(1000, len(f_train), len(f_test)), seed=ec.seed)[0]
        out["reference"] = ref
        out.update(self.extra_references(net, f_test, rate, model.spec, cfg, test, conv))
        conv.update(
            {
                "features": name,
                "features_sha256": net_hash(net),
                "inception_score": "exp E KL(p(y|x) || p(y)) of the classifier, mean over 10 splits (Salimans et al.)",
                "fid": "Frechet distance of the classifier's penultimate features (pytorch-fid algorithm, float64)",
                "kid": "unbiased MMD^2, cubic polynomial kernel",
                "accuracy": "share of conditional samples the classifier assigns to their requested class",
                "reference_fid": f"{len(f_train)} training clips drawn with eval.seed (other speakers) against the test clips",
            }
        )
        return out, conv
