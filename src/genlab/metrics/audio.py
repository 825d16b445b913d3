"""Audio sample quality, offline: a small log-mel CNN classifier (shipped weights) gives the Inception Score (Salimans et
al. 2016) as WaveGAN's SC09 score (Donahue et al. 2019), FID / KID in its feature space and the accuracy of conditional
samples; YIN (de Cheveigne & Kawahara 2002) estimates the pitch of notes independently of any network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genlab.data.audio import log_mel, midi_to_hz, resample
from genlab.metrics.feature_nets import WEIGHTS_DIR, inception_score_analogue, load_checked_weights
from genlab.registry import register_features

TRAIN_SCRIPT = "scripts/train_audio_classifier.py"


class AudioClassifier(nn.Module):
    """A log-mel CNN classifier of 1-second mono clips; its penultimate layer is the feature space.

    Clips (N, 1, T) at `sample_rate` (other rates are resampled by `prepare`) -> log-mel (N, 1, n_mels, frames; bands up
    to `fmax`, default Nyquist) in dB
    below each clip's loudest bin, scaled by 1/40 -> [conv3x3 BN ReLU] x2, maxpool, x2, maxpool, conv, maxpool ->
    linear(feature_dim) BN ReLU = `features(x)` -> dropout -> linear(num_classes) = `classify(x)`.

    >>> net = AudioClassifier().eval()
    >>> net.features(torch.zeros(2, 1, 8000)).shape, net.classify(torch.zeros(2, 1, 8000)).shape
    (torch.Size([2, 128]), torch.Size([2, 10]))
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        sample_rate: int = 8000,
        length: int = 8000,
        n_fft: int = 256,
        hop: int = 128,
        n_mels: int = 40,
        fmax: float | None = None,
        widths: tuple[int, int, int] = (16, 32, 64),
        feature_dim: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.config = {
            "num_classes": num_classes,
            "sample_rate": sample_rate,
            "length": length,
            "n_fft": n_fft,
            "hop": hop,
            "n_mels": n_mels,
            "fmax": fmax,
            "widths": list(widths),
            "feature_dim": feature_dim,
        }
        self.sample_rate, self.length, self.n_fft, self.hop, self.n_mels, self.fmax = sample_rate, length, n_fft, hop, n_mels, fmax
        c1, c2, c3 = widths

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *conv(1, c1), *conv(c1, c1), nn.MaxPool2d(2), *conv(c1, c2), *conv(c2, c2), nn.MaxPool2d(2), *conv(c2, c3), nn.MaxPool2d(2)
        )
        frames = length // hop + 1
        flat = c3 * (n_mels // 8) * (frames // 8)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.weights_sha256: str | None = None

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, length) clips -> (N, 1, n_mels, frames) log-mel / 40."""
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != self.length:
            raise ValueError(f"AudioClassifier expects clips N x 1 x {self.length} at {self.sample_rate} Hz; got shape {tuple(x.shape)}")
        return log_mel(x.float(), self.sample_rate, n_fft=self.n_fft, hop=self.hop, n_mels=self.n_mels, fmax=self.fmax) / 40.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, float32 (N, feature_dim)."""
        return self.head(self.body(self.spectrogram(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.classifier(self.dropout(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x)

    def prepare(self, x: torch.Tensor | np.ndarray, sample_rate: int) -> torch.Tensor:
        """Clips (N, 1, T) or (N, T) at `sample_rate` -> (N, 1, length) at the net's rate: resampled, then cut or zero-padded
        at the end (1-second clips at any rate come out whole)."""
        x = torch.as_tensor(np.asarray(x.detach().cpu()) if torch.is_tensor(x) else np.asarray(x), dtype=torch.float32)
        if x.ndim == 2:
            x = x[:, None]
        if x.ndim != 3 or x.shape[1] != 1 or len(x) == 0:
            raise ValueError(f"expected mono clips N x 1 x T (N >= 1), got shape {tuple(x.shape)}")
        y = torch.from_numpy(resample(x.numpy(), sample_rate, self.sample_rate))
        if y.shape[-1] >= self.length:
            return y[..., : self.length].contiguous()
        return torch.nn.functional.pad(y, (0, self.length - y.shape[-1]))


@torch.no_grad()
def classifier_outputs(
    net: AudioClassifier, x: torch.Tensor | np.ndarray, sample_rate: int, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D), logits (N, K)) as float64 numpy of clips at `sample_rate`, in eval mode, batched."""
    was = net.training
    net.eval()
    try:
        clips = net.prepare(x, sample_rate)
        device = next(net.parameters()).device
        feats, logits = [], []
        for s in range(0, len(clips), batch_size):
            f = net.features(clips[s : s + batch_size].to(device))
            feats.append(f.double().cpu())
            logits.append(net.classifier(f).double().cpu())
    finally:
        net.train(was)
    return torch.cat(feats).numpy(), torch.cat(logits).numpy()


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of the classifier's predictions, the mean over `splits` parts (WaveGAN's SC09 score
    with its own classifier; here genlab's): 1 when every clip gets the same prediction, K for confident balanced ones."""
    n = len(logits)
    return inception_score_analogue(logits, splits=max(1, min(splits, n)))[0]


def accuracy(logits: np.ndarray, labels: np.ndarray | torch.Tensor) -> float:
    """The share of clips whose argmax logit is their label."""
    labels = np.asarray(torch.as_tensor(labels).cpu())
    if labels.shape != (len(logits),):
        raise ValueError(f"expected {len(logits)} labels, got shape {labels.shape}")
    return float((np.asarray(logits).argmax(1) == labels).mean())


def load_audio_classifier(name: str, weights_dir: str | os.PathLike | None = None) -> AudioClassifier:
    """The shipped classifier `<name>_classifier.safetensors` in eval mode, its SHA-256 checked against the sidecar
    `<name>_classifier.json` (which also holds the architecture and the command that trained it;
    `feature_nets.load_checked_weights`)."""
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR

    def build(info: dict) -> AudioClassifier:
        arch = dict(info["architecture"])
        return AudioClassifier(**{**arch, "widths": tuple(arch["widths"])})

    return load_checked_weights(
        name,
        folder / f"{name}_classifier.safetensors",
        folder / f"{name}_classifier.json",
        build,
        f"python {TRAIN_SCRIPT} --dataset {name} --out {folder}",
    )


@register_features("spoken_digits", datasets=("spoken_digits", "spoken_digits_8k", "spoken_digits_mel"))
def spoken_digits_net() -> AudioClassifier:
    """genlab's spoken-digit classifier (8 kHz log-mel CNN; shipped weights, hash-checked, eval mode)."""
    return load_audio_classifier("spoken_digits")


@register_features("notes", datasets=("notes",))
def notes_net() -> AudioClassifier:
    """genlab's pitch-class classifier of single notes (16 kHz log-mel CNN up to 3 kHz, trained on the training
    instruments, scored on held-out ones; shipped weights, hash-checked, eval mode)."""
    return load_audio_classifier("notes")


# ---------------------------------------------------------------------------------------------------------------- YIN


def yin_pitch(
    x: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    fmin: float = 50.0,
    fmax: float = 1000.0,
    frame: float = 0.064,
    threshold: float = 0.15,
    start: float = 0.05,
    stop: float = 0.6,
) -> np.ndarray:
    """The fundamental frequency in Hz of each clip (N, T) or (N, 1, T) by YIN; NaN where no frame is voiced.

    Per frame of `frame` seconds (hop frame / 2) between `start` and `stop` seconds: the difference function
    d(tau) = sum_j (x_j - x_{j + tau})^2, its cumulative mean normalised form d'(tau) = d(tau) tau / sum_{k<=tau} d(k),
    the first tau in [sr / fmax, sr / fmin] where d' dips below `threshold`, taken at its local minimum and refined by
    parabolic interpolation of d (steps 2-5 of the paper). A clip's pitch is the median over its voiced frames.
    """
    x = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    W = int(frame * sample_rate)
    tau_min, tau_max = max(2, int(sample_rate / fmax)), min(W - 1, int(np.ceil(sample_rate / fmin)))
    starts = range(int(start * sample_rate), min(x.shape[1], int(stop * sample_rate)) - W - tau_max + 1, max(1, W // 2))
    out = np.full(len(x), np.nan)
    if not len(starts):
        return out
    idx = np.array(starts)[:, None] + np.arange(W + tau_max)[None]
    frames = x[:, idx]  # (N, F, W + tau_max)
    N, F_, _ = frames.shape
    # d(tau) = r_t(0) + r_{t+tau}(0) - 2 r_t(tau) via FFT cross-correlation of the window with the frame.
    size = 1 << int(np.ceil(np.log2(2 * (W + tau_max))))
    a, b = frames[..., :W], frames
    corr = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)[..., : tau_max + 1]
    csum = np.concatenate([np.zeros((N, F_, 1)), np.cumsum(b**2, -1)], -1)
    energy = csum[..., W : W + tau_max + 1] - csum[..., : tau_max + 1]  # sum_{j<W} x_{j+tau}^2
    d = (a**2).sum(-1, keepdims=True) + energy - 2 * corr
    d[..., 0] = 0
    taus = np.arange(tau_max + 1)
    cm = np.cumsum(d[..., 1:], -1)
    dn = np.ones_like(d)
    dn[..., 1:] = d[..., 1:] * taus[1:] / np.maximum(cm, 1e-12)
    loud = frames[..., :W].std(-1) > 1e-4
    f0 = np.full((N, F_), np.nan)
    for n in range(N):
        for f in range(F_):
            if not loud[n, f]:
                continue
            row = dn[n, f]
            below = np.flatnonzero(row[tau_min : tau_max + 1] < threshold)
            if not len(below):
                continue
            t = tau_min + below[0]
            while t + 1 <= tau_max and row[t + 1] < row[t]:
                t += 1
            if 0 < t < tau_max:  # parabolic interpolation of the raw difference function around its minimum
                raw = d[n, f]
                den = raw[t - 1] - 2 * raw[t] + raw[t + 1]
                t = t + (0.5 * (raw[t - 1] - raw[t + 1]) / den if den > 0 else 0.0)
            f0[n, f] = sample_rate / t
    with np.errstate(all="ignore"):
        voiced = ~np.isnan(f0).all(1)
        out[voiced] = np.nanmedian(f0[voiced], 1)
    return out


def semitone_error(f0: np.ndarray, midi: np.ndarray) -> np.ndarray:
    """12 log2(f0 / f(midi)): signed distance in semitones from the requested pitch (NaN where f0 is NaN)."""
    with np.errstate(all="ignore"):
        return 12 * np.log2(np.asarray(f0, dtype=np.float64) / midi_to_hz(np.asarray(midi)))


def pitch_accuracy(f0: np.ndarray, midi: np.ndarray, tolerance: float = 0.5) -> float:
    """The share of clips whose estimated pitch lies within `tolerance` semitones of the requested MIDI pitch (0.5: the
    nearest note is the requested one); unvoiced clips (NaN) and octave errors count as wrong."""
    err = np.abs(semitone_error(f0, midi))
    return float(np.where(np.isnan(err), False, err < tolerance).mean())


def reference_scores(net: AudioClassifier, x: torch.Tensor, y: torch.Tensor | None, sample_rate: int) -> dict[str, Any]:
    """The real clips' own scores: the ceiling a model is compared with (inception_score, accuracy; fid / kid are 0)."""
    _, logits = classifier_outputs(net, x, sample_rate)
    out: dict[str, Any] = {"inception_score": inception_score(logits)}
    if y is not None:
        out["accuracy"] = accuracy(logits, y)
    return out
