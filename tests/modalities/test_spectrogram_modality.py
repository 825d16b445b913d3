"""The spectrogram modality: samples (mel images) are written and previewed as sound, and scored as waveforms against
the real clips: the reference numbers are those of the clips themselves, a model replaying the real images beats one
replaying one class for every request, and `reference_inverted` is the representation's own ceiling."""

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

sf = pytest.importorskip("soundfile", reason="the spectrogram modality writes WAVs with soundfile")

from genlab import registry  # noqa: E402
from genlab.config import build_run_config  # noqa: E402
from genlab.data.audio import PEAK, AudioDataset, waveform_spec  # noqa: E402
from genlab.data.audio_spectrogram import MelParams, spectrogram_dataset  # noqa: E402
from genlab.metrics.audio import AudioClassifier, classifier_outputs, inception_score  # noqa: E402
from genlab.models.base import GenerativeModel, ModelConfig  # noqa: E402

P = MelParams()
NAMES = ("low", "mid", "high")


def chords(n_per_class=4):
    """Three classes of sound: harmonic tones at 150, 400 and 1100 Hz with random harmonic weights and onsets."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(P.length, dtype=torch.float64) / P.sample_rate
    xs, ys = [], []
    for k, f0 in enumerate((150.0, 400.0, 1100.0)):
        for _ in range(n_per_class):
            w = torch.rand(3, generator=g, dtype=torch.float64)
            on = 0.1 + 0.3 * torch.rand((), generator=g, dtype=torch.float64)
            x = sum(w[h] * torch.sin(2 * torch.pi * f0 * (h + 1) * t) for h in range(3)) * ((t > on) & (t < on + 0.5))
            xs.append(0.9 * x / x.abs().max())
            ys.append(k)
    y = torch.tensor(ys)
    return AudioDataset(
        torch.stack(xs).float()[:, None], y, waveform_spec(P.length, P.sample_rate, NAMES), "chords", sample_rate=P.sample_rate
    )


@pytest.fixture(scope="module")
def data():
    return spectrogram_dataset(chords(), P, "chords_mel")


def test_write_folder_wav_npz_and_preview(tmp_path, data):
    m = registry.modality("spectrogram")
    x, y = data.x[:3], data.y[:3]
    out = m.write(x, y, tmp_path / "clips", data.spec)
    files = sorted(out.glob("*.wav"))
    assert [f.name for f in files] == ["00_low.wav", "01_low.wav", "02_low.wav"]
    wave, rate = sf.read(str(files[0]), dtype="float32")
    assert rate == P.sample_rate and wave.shape == (P.length,) and abs(np.abs(wave).max() - PEAK) < 1e-3
    npz = m.write(x, y, tmp_path / "s.npz", data.spec)
    with np.load(npz) as z:
        assert z["mel"].shape == (3, 1, 32, 32) and z["audio"].shape == (3, P.length) and int(z["sample_rate"]) == P.sample_rate
        assert np.array_equal(z["mel"], x.numpy()) and z["labels"].tolist() == [0, 0, 0]
    png = m.write(x, y, tmp_path / "grid.png", data.spec)
    assert png.is_file() and len(list((tmp_path / "grid").glob("*.wav"))) == 3


class Replay(GenerativeModel):
    """Samples: the dataset's images of the requested class (collapse: always of class 0), in order."""

    family, likelihood = "test", "none"

    def __init__(self, ds, collapse=False):
        super().__init__(ModelConfig(name="replay"), ds.spec)
        self.ds, self.collapse, self.p = ds, collapse, torch.nn.Parameter(torch.zeros(()))
        self.seen = {}

    @property
    def conditional(self):
        return True

    def sample(self, n, *, labels=None, generator=None):
        out = []
        for k in labels.tolist():
            idx = (self.ds.y == (0 if self.collapse else k)).nonzero()[:, 0]
            i = self.seen.get(k, 0)
            self.seen[k] = i + 1
            out.append(self.ds.x[idx[i % len(idx)]])
        return torch.stack(out)


def trained_net(data, steps=40):
    """The log-mel classifier trained on the real clips (a few seconds): it knows the classes by ear."""
    torch.manual_seed(0)
    net = AudioClassifier(num_classes=3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net.classify(data.waves), data.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_metrics_score_sound_against_the_real_clips(monkeypatch, data):
    monkeypatch.setitem(registry._DATASETS, "chords_mel_test", lambda cfg, split: data)
    net = trained_net(data)
    monkeypatch.setitem(registry._FEATURES, "chords_net", lambda: net)
    cfg = build_run_config(
        {
            "data": {"name": "chords_mel_test"},
            "model": {"name": "test_gaussian"},
            "train": {"max_steps": 1},
            "eval": {"n_samples": 12, "features": "chords_net"},
        }
    )
    m = registry.modality("spectrogram")
    right, conv = m.sample_metrics(Replay(data), cfg, data)
    wrong, _ = m.sample_metrics(Replay(data, collapse=True), cfg, data)
    _, logits = classifier_outputs(net, data.waves, P.sample_rate)
    assert right["reference"]["inception_score"] == pytest.approx(inception_score(logits))  # the clips, not their images
    assert right["reference"]["accuracy"] == 1.0
    assert right["accuracy"] >= 0.9 and wrong["accuracy"] <= 0.5, (right["accuracy"], wrong["accuracy"])  # heard as asked
    assert right["fid"] < 0.5 * wrong["fid"], (right["fid"], wrong["fid"])
    inv = right["reference_inverted"]
    assert set(inv) == {"inception_score", "fid", "accuracy"} and "Griffin-Lim" in conv["reference_inverted"]
    assert right["seconds_per_sample"] > 0 and conv["sample_rate"] == P.sample_rate


def test_a_subset_of_the_images_is_matched_to_its_clips(monkeypatch, data):
    from genlab.data.base import ArrayDataset

    monkeypatch.setitem(registry._DATASETS, "chords_mel_test", lambda cfg, split: data)
    cfg = build_run_config({"data": {"name": "chords_mel_test"}, "model": {"name": "test_gaussian"}, "train": {"max_steps": 1}})
    part = ArrayDataset(data.x[:5], data.y[:5], data.spec, "part")  # what data.n_test makes
    assert torch.equal(registry.modality("spectrogram").real_clips(part, cfg, "test"), data.waves[:5])
