"""Audio metrics on known inputs: YIN on pure and harmonic tones, pitch accuracy, the Inception Score's closed forms,
FID of a set with itself, the classifier's front end, its hash-checked loading, and the shipped classifier's reported
test accuracy reproduced on the built test speakers."""

import json

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import registry
from genlab.checkpoint import save_weights
from genlab.errors import CheckpointError
from genlab.metrics.audio import (
    AudioClassifier,
    accuracy,
    classifier_outputs,
    inception_score,
    load_audio_classifier,
    pitch_accuracy,
    semitone_error,
    yin_pitch,
)
from genlab.metrics.feature_nets import WEIGHTS_DIR, file_sha256
from genlab.metrics.fid import fid

pytestmark = pytest.mark.usefixtures("one_thread")  # many small ops: one thread is fastest on a busy machine


def tone(freqs, rate, seconds=1.0, harmonics=1):
    t = np.arange(int(rate * seconds)) / rate
    # harmonics above Nyquist would alias: left out
    return np.stack([sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, harmonics + 1) if k * f < rate / 2) * 0.3 for f in freqs])


@pytest.mark.parametrize("rate", [8000, 16000])
def test_yin_finds_the_frequency_of_pure_and_harmonic_tones(rate):
    freqs = [65.4, 110.0, 261.63, 440.0, 987.8]
    for harmonics in (1, 6):
        f0 = yin_pitch(tone(freqs, rate, harmonics=harmonics), rate)
        assert np.abs(12 * np.log2(f0 / np.array(freqs))).max() < 0.15, (harmonics, f0)  # a seventh of the accuracy window
        assert np.allclose(f0[:4], freqs[:4], rtol=2e-3)  # periods of 8 samples and more: parabolic refinement is this close


def test_yin_says_nan_for_silence_and_noise():
    rng = np.random.default_rng(0)
    f0 = yin_pitch(np.stack([np.zeros(16000), rng.standard_normal(16000) * 0.3]), 16000)
    assert np.isnan(f0).all()


def test_pitch_accuracy_within_half_a_semitone():
    midi = np.array([69, 69, 69, 69, 60])
    f0 = np.array([440.0, 440 * 2 ** (0.4 / 12), 440 * 2 ** (0.6 / 12), 880.0, np.nan])  # exact, +0.4, +0.6, octave, unvoiced
    assert np.allclose(semitone_error(f0[:4], midi[:4]), [0, 0.4, 0.6, 12])
    assert pitch_accuracy(f0, midi) == pytest.approx(2 / 5)
    assert pitch_accuracy(f0, midi, tolerance=1.0) == pytest.approx(3 / 5)


def test_inception_score_closed_forms():
    K, n = 10, 200
    assert inception_score(np.zeros((n, K))) == pytest.approx(1.0)  # every prediction uniform: KL = 0
    one_hot = np.full((n, K), -1e4)
    one_hot[np.arange(n), np.arange(n) % K] = 0  # confident and balanced: KL = log K in every split
    assert inception_score(one_hot) == pytest.approx(K)
    same = np.full((n, K), -1e4)
    same[:, 3] = 0  # confident but always the same class: p(y|x) = p(y)
    assert inception_score(same) == pytest.approx(1.0)
    # Two classes with p(y|x) = (p, 1 - p) for half the clips and (1 - p, p) for the other half: p(y) uniform,
    # IS = exp(log 2 - H(p)) with H the binary entropy.
    p = 0.8
    logits = np.log(np.array([[p, 1 - p], [1 - p, p]] * 50))
    assert inception_score(logits, splits=1) == pytest.approx(np.exp(np.log(2) + p * np.log(p) + (1 - p) * np.log(1 - p)))


def test_fid_of_a_set_with_itself_is_zero_and_accuracy_counts():
    net = AudioClassifier().eval()
    x = torch.from_numpy(tone([200, 300, 400, 500] * 8, 8000)).float()[:, None] * torch.linspace(0.2, 1, 32)[:, None, None]
    feats, logits = classifier_outputs(net, x, 8000)
    assert feats.shape == (32, 128) and logits.shape == (32, 10)
    assert abs(fid(feats, feats)) < 1e-6
    assert accuracy(np.eye(10)[[1, 2, 3]], torch.tensor([1, 2, 0])) == pytest.approx(2 / 3)


def test_prepare_resamples_and_fits_the_clip():
    net = AudioClassifier()
    x16 = torch.from_numpy(tone([440], 16000)).float()
    y = net.prepare(x16, 16000)
    assert y.shape == (1, 1, 8000)
    spec = np.abs(np.fft.rfft(y[0, 0].numpy()))
    assert abs(spec.argmax() * 8000 / 8000 - 440) <= 1
    assert net.prepare(torch.zeros(2, 1, 4000), 8000).shape == (2, 1, 8000)  # half a second: zero-padded


def test_loader_checks_the_hash(tmp_path):
    net = AudioClassifier(num_classes=3, n_mels=16, widths=(4, 4, 4), feature_dim=8)
    path = tmp_path / "toy_classifier.safetensors"
    save_weights(path, net, {})
    sidecar = {"sha256": file_sha256(path), "architecture": net.config, "command": "python train_toy.py"}
    (tmp_path / "toy_classifier.json").write_text(json.dumps(sidecar))
    loaded = load_audio_classifier("toy", tmp_path)
    assert loaded.weights_sha256 == sidecar["sha256"] and not loaded.training
    x = torch.randn(2, 1, 8000) * 0.1
    net.eval()
    assert torch.allclose(loaded.classify(x), net.classify(x))
    path.write_bytes(path.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_audio_classifier("toy", tmp_path)
    with pytest.raises(CheckpointError, match="missing"):
        load_audio_classifier("other", tmp_path)


@pytest.mark.parametrize("name", ["spoken_digits", "notes"])
def test_shipped_classifier_matches_its_reported_test_accuracy(name):
    sidecar = WEIGHTS_DIR / f"{name}_classifier.json"
    if not sidecar.is_file():
        pytest.skip(f"no shipped {name} classifier")
    from genlab.config import DataConfig
    from genlab.data.audio import data_home

    if not (data_home(name) / "test.npz").is_file():
        pytest.skip(f"{name} is not built (genlab data build {name})")
    info = json.loads(sidecar.read_text())
    built = json.loads((data_home(name) / "manifest.json").read_text())["sha256"]["test.npz"]
    if built != info["data_manifest"]["sha256"]["test.npz"]:
        pytest.skip(f"the {name} build here differs from the one the classifier was scored on (other synthesiser versions)")
    test = registry.dataset(info["trained_on"])(DataConfig(name=info["trained_on"]), "test")
    net = registry.features(name)()
    _, logits = classifier_outputs(net, test.x, test.sample_rate)
    assert accuracy(logits, test.y) == pytest.approx(info["test_accuracy"], abs=1e-4)
    assert (WEIGHTS_DIR / f"{name}_classifier.safetensors").stat().st_size < 2e6


def test_registered_for_both_digit_sets():
    assert registry.features_for_dataset("spoken_digits") == "spoken_digits"
    assert registry.features_for_dataset("spoken_digits_8k") == "spoken_digits"
    assert registry.features_for_dataset("notes") == "notes"
