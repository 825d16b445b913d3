"""The waveform modality: `genlab sample --out` for a folder, .wav (one and several clips), .npz and .png (spectrograms
with the WAVs beside them), read back; and the sample metrics of a model whose samples are the real test clips, which
must equal the reference numbers."""

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")  # many small ops: one thread is fastest on a busy machine

sf = pytest.importorskip("soundfile", reason="the waveform modality needs soundfile (pip install soundfile)")

from genlab import registry  # noqa: E402
from genlab.config import build_run_config  # noqa: E402
from genlab.data.audio import AudioDataset, note_name, waveform_spec  # noqa: E402
from genlab.errors import ConfigError  # noqa: E402
from genlab.metrics.audio import AudioClassifier  # noqa: E402
from genlab.models.base import GenerativeModel, ModelConfig  # noqa: E402

RATE = 8000
SPEC = waveform_spec(RATE, RATE, ("zero", "one", "two"))


def clips(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, RATE), generator=g) * 2 - 1) * 0.5


def read(path):
    x, rate = sf.read(str(path), dtype="float32")
    return torch.from_numpy(x), rate


def test_write_to_a_folder_names_files_by_label(tmp_path):
    x = clips()
    out = registry.modality("waveform").write(x, torch.tensor([2, 0, 1]), tmp_path / "clips", SPEC)
    files = sorted(out.glob("*.wav"))
    assert [f.name for f in files] == ["00_two.wav", "01_zero.wav", "02_one.wav"]
    y, rate = read(files[0])
    assert rate == RATE and (y - x[0, 0]).abs().max() < 1 / 32767 + 1e-6  # 16-bit PCM


def test_write_wav_one_or_several(tmp_path):
    w = registry.modality("waveform")
    one = w.write(clips(1), None, tmp_path / "one.wav", SPEC)
    assert one == tmp_path / "one.wav" and read(one)[0].shape == (RATE,)
    several = w.write(clips(2), torch.tensor([1, 1]), tmp_path / "x.wav", SPEC)
    assert several == tmp_path and sorted(p.name for p in tmp_path.glob("x_*.wav")) == ["x_00_one.wav", "x_01_one.wav"]


def test_npz_and_preview(tmp_path):
    w, x = registry.modality("waveform"), clips(6)
    out = w.write(x, torch.tensor([0, 1, 2, 0, 1, 2]), tmp_path / "s.npz", SPEC)
    with np.load(out) as z:
        assert np.array_equal(z["audio"], x[:, 0].numpy()) and int(z["sample_rate"]) == RATE and z["labels"].tolist() == [0, 1, 2] * 2
    png = w.write(x, torch.tensor([0, 1, 2, 0, 1, 2]), tmp_path / "grid.png", SPEC)
    from PIL import Image

    assert Image.open(png).size[0] > Image.open(png).size[1]  # 3 columns (one per class) x 2 rows
    assert len(list((tmp_path / "grid").glob("*.wav"))) == 6
    w.preview(x[:2], png, spec=SPEC)  # a later preview replaces the earlier clips
    assert len(list((tmp_path / "grid").glob("*.wav"))) == 2
    with pytest.raises(ConfigError, match="expected"):
        w.write(x, None, tmp_path / "s.mp3", SPEC)


class Replay(GenerativeModel):
    """A 'model' whose samples are given clips, in order, for the labels asked (the first clip of each label)."""

    family, likelihood = "test", "none"

    def __init__(self, x, y, spec):
        super().__init__(ModelConfig(name="replay"), spec)
        self.x, self.y, self.p = x, y, torch.nn.Parameter(torch.zeros(()))

    @property
    def conditional(self):
        return True

    def sample(self, n, *, labels=None, generator=None):
        return torch.stack([self.x[int((self.y == k).nonzero()[0])] for k in labels])


def test_metrics_of_real_clips_equal_the_reference(monkeypatch):
    # Notes-like data: 3 pitches as pure tones; a classifier with random weights is enough to compare sets.
    midi = [57, 60, 64]
    names = tuple(note_name(m) for m in midi)
    t = torch.arange(RATE) / RATE
    freqs = 440 * 2 ** ((torch.tensor(midi * 4, dtype=torch.float64) - 69) / 12)
    x = (0.5 * torch.sin(2 * torch.pi * freqs[:, None] * t)).float()[:, None]
    y = torch.arange(12) % 3
    ds = AudioDataset(x, y, waveform_spec(RATE, RATE, names), "tones", sample_rate=RATE)
    monkeypatch.setitem(registry._DATASETS, "tones_test", lambda cfg, split: ds)
    torch.manual_seed(0)
    net = AudioClassifier(num_classes=3).eval()
    monkeypatch.setitem(registry._FEATURES, "tones_net", lambda: net)
    cfg = build_run_config(
        {
            "data": {"name": "tones_test"},
            "model": {"name": "test_gaussian"},
            "train": {"max_steps": 1},
            "eval": {"n_samples": 12, "features": "tones_net"},
        }
    )
    model = Replay(x, y, ds.spec)
    out, conv = registry.modality("waveform").sample_metrics(model, cfg, ds)
    ref = out["reference"]
    assert out["pitch_accuracy"] == ref["pitch_accuracy"] == 1.0
    assert out["accuracy"] == pytest.approx(ref["accuracy"]) and out["inception_score"] == pytest.approx(ref["inception_score"])
    assert out["fid"] == pytest.approx(0, abs=1e-6) and ref["fid"] == pytest.approx(0, abs=1e-6)  # the same 12 clips
    assert conv["features"] == "tones_net" and conv["sample_rate"] == RATE
    line = registry.modality("waveform").summary({"inception_score": 4.5, "fid": 3.0, "reference": {"inception_score": 9.0}})
    assert line == ["IS 4.5 (real 9)", "FID 3"]
