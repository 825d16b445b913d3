"""Audio data: the offline spoken-digits and notes builds on tiny profiles (sizes, speaker-disjoint splits, determinism,
pitch of the rendered notes), the signal helpers against closed forms, audio_folder with resampling, the Speech Commands
download on a local archive, and fuzzed folders that must give a DataError, never a raw traceback."""

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sf = pytest.importorskip("soundfile", reason="the audio data need soundfile (pip install soundfile)")

from genlab import registry  # noqa: E402
from genlab.config import DataConfig  # noqa: E402
from genlab.data import audio as A  # noqa: E402
from genlab.errors import DataError  # noqa: E402

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (scripts/get_audio.sh)")
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not any(__import__("os").path.isfile(p) for p in A.SOUNDFONTS),
    reason="fluidsynth or a GM soundfont is not installed (scripts/get_audio.sh)",
)


def sine(freq, rate, seconds=1.0, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def peak_hz(x, rate):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * rate / len(x)


# ------------------------------------------------------------------------------------------------------ signal helpers


def test_resample_keeps_a_sine_frequency_and_length():
    y = A.resample(sine(440, 22050), 22050, 16000)
    assert len(y) == 16000
    assert abs(peak_hz(y, 16000) - 440) < 2


def test_centre_clip_trims_silence_and_centres_the_sound():
    rate = 8000
    x = np.concatenate([np.zeros(3000), sine(300, rate, 0.25), np.zeros(500)]).astype(np.float32)
    out = A.centre_clip(x, 8000, rate)
    a, b = A.voiced_span(out, rate)
    assert len(out) == 8000 and abs((a + b) / 2 - 4000) <= 80  # the 0.25 s tone sits in the middle
    long = sine(300, rate, 2.0)
    assert np.array_equal(A.centre_clip(long, 8000, rate, trim=False), long[4000:12000])


def test_peak_normalize_and_int16_round_trip():
    x = A.peak_normalize(sine(100, 8000, amp=0.1))
    assert np.isclose(np.abs(x).max(), A.PEAK, atol=1e-6)
    assert np.abs(A.from_int16(A.to_int16(x)) - x).max() <= 0.5 / 32767 + 1e-7
    assert not A.peak_normalize(np.zeros(10)).any()


def test_note_names_and_frequencies():
    assert A.note_name(60) == "C4" and A.note_name(69) == "A4" and A.note_name(61) == "C#4"
    assert all(A.note_to_midi(A.note_name(m)) == m for m in range(12, 120))
    assert A.note_to_midi("zero") is None and A.note_to_midi("C") is None
    assert np.isclose(A.midi_to_hz(69), 440) and np.isclose(A.midi_to_hz(81), 880)


def test_mel_filterbank_triangles_peak_at_mel_spaced_centres():
    fb = A.mel_filterbank(512, 16000, 20).numpy()
    freqs = np.linspace(0, 8000, 257)
    centres = A.mel_to_hz(np.linspace(0, A.hz_to_mel(8000), 22))[1:-1]
    assert fb.shape == (20, 257) and fb.max() <= 1 + 1e-6 and (fb >= 0).all()
    assert np.allclose(freqs[fb.argmax(1)], centres, atol=8000 / 256)  # each filter peaks at the FFT bin nearest its centre
    assert np.isclose(A.hz_to_mel(1000), 1000, rtol=1e-3)  # the HTK scale's anchor: 1000 Hz ~ 1000 mel


def test_log_mel_of_a_sine_is_loudest_in_its_band():
    db = A.log_mel(torch.from_numpy(sine(1000, 16000))[None], 16000, n_fft=512, hop=128, n_mels=40)
    assert db.shape == (1, 40, 16000 // 128 + 1) and db.max() == 0 and db.min() >= -80
    centres = A.mel_to_hz(np.linspace(0, A.hz_to_mel(8000), 42))[1:-1]
    assert int(db[0, :, 10:-10].mean(-1).argmax()) == int(np.abs(centres - 1000).argmin())


def test_wav_write_read_round_trip(tmp_path):
    x = sine(220, 16000) * 1.5  # beyond [-1, 1]: clipped on write
    path = A.write_wav(tmp_path / "a.wav", x, 16000)
    y, rate = A.read_audio(path)
    assert rate == 16000 and sf.info(str(path)).subtype == "PCM_16"
    assert np.abs(y - np.clip(x, -1, 1)).max() < 1e-4


# ------------------------------------------------------------------------------------------------------ spoken digits


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/get_audio.sh)")
    dest = tmp_path_factory.mktemp("digits")
    return dest, A.build_spoken_digits(dest, profile="tiny")


def test_tiny_build_sizes_shapes_and_speaker_disjoint_split(tiny_digits):
    dest, manifest = tiny_digits
    assert manifest["sizes"] == {"train": 10, "test": 10} and manifest["speakers"] == {"train": 1, "test": 1}
    cfg = DataConfig(name="spoken_digits", root=str(dest))
    train, test = (registry.dataset("spoken_digits")(cfg, s) for s in ("train", "test"))
    assert train.x.shape == (10, 1, 16000) and train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert sorted(train.y.tolist()) == list(range(10)) and sorted(test.y.tolist()) == list(range(10))
    assert train.spec.shape == (1, 16000) and train.spec.modality == "waveform" and train.spec.class_names == A.DIGITS
    assert np.isclose(float(train.x.abs().amax(-1).min()), A.PEAK, atol=1e-3)  # every clip peak-normalised
    assert not set(train.speaker_names) & set(test.speaker_names)


def test_tiny_build_is_deterministic(tiny_digits, tmp_path):
    dest, manifest = tiny_digits
    again = A.build_spoken_digits(tmp_path, profile="tiny")
    assert again["sha256"] == manifest["sha256"]
    with np.load(dest / "train.npz") as a, np.load(tmp_path / "train.npz") as b:
        assert np.array_equal(a["x"], b["x"])


def test_8k_variant_and_clip_length_override(tiny_digits):
    dest, _ = tiny_digits
    ds = registry.dataset("spoken_digits_8k")(DataConfig(name="spoken_digits_8k", root=str(dest)), "test")
    assert ds.x.shape == (10, 1, 8000) and ds.sample_rate == 8000 and ds.spec.shape == (1, 8000)
    full = registry.dataset("spoken_digits")(DataConfig(name="spoken_digits", root=str(dest)), "test")
    assert np.abs(A.resample(full.x[:, 0].numpy(), 16000, 8000) - ds.x[:, 0].numpy()).max() < 1e-4
    longer = registry.dataset("spoken_digits")(DataConfig(name="spoken_digits", root=str(dest), clip_seconds=1.5), "test")
    assert longer.x.shape == (10, 1, 24000) and torch.equal(longer.x[..., 4000:20000], full.x)
    assert (dest / "test_8000hz.npz").is_file()  # the resampled clips are cached beside the build ...
    A._LOADED.clear()
    again = registry.dataset("spoken_digits_8k")(DataConfig(name="spoken_digits_8k", root=str(dest)), "test")
    assert torch.equal(again.x, ds.x)  # ... and the cache gives the same clips


def test_resample_cache_is_keyed_by_the_source(tmp_path):
    x = A.to_int16(np.stack([sine(440, 16000), sine(300, 16000)]))
    first = A.resampled(tmp_path, "train", x, 16000, 8000, "aaa")
    assert first.shape == (2, 8000) and np.array_equal(A.resampled(tmp_path, "train", x * 0, 16000, 8000, "aaa"), first)
    assert not A.resampled(tmp_path, "train", x * 0, 16000, 8000, "bbb").any()  # another source: computed again


@needs_espeak
def test_full_recipe_holds_test_speakers_out():
    takes = A.digit_takes(A.DIGIT_PROFILES["full"])
    train = {t.speaker for t in takes if t.split == "train"}
    test = {t.speaker for t in takes if t.split == "test"}
    assert not train & test and len(test) >= 100 and len(train) >= 500
    assert "asterisk:allison" in test and "flite:slt" in test
    assert all(t.split == "test" for t in takes if "+" in t.voice and t.voice.split("+")[1] in A.ESPEAK_TEST_VARIANTS)
    espeak = [t for t in takes if t.engine == "espeak-ng"]
    assert len({(t.speed, t.pitch) for t in espeak}) > 1000 and all(130 <= t.speed <= 220 and 25 <= t.pitch <= 75 for t in espeak)


def test_missing_build_names_the_command(tmp_path):
    with pytest.raises(DataError, match="genlab data build spoken_digits"):
        registry.dataset("spoken_digits")(DataConfig(name="spoken_digits", root=str(tmp_path)), "train")


# -------------------------------------------------------------------------------------------------------------- notes


@needs_fluidsynth
def test_tiny_notes_build_labels_and_pitch(tmp_path):
    from genlab.metrics.audio import pitch_accuracy, yin_pitch

    manifest = A.build_notes(tmp_path, profile="tiny")
    train = registry.dataset("notes")(DataConfig(name="notes", root=str(tmp_path)), "train")
    test = registry.dataset("notes")(DataConfig(name="notes", root=str(tmp_path)), "test")
    assert manifest["sizes"] == {"train": len(train), "test": len(test)} and len(train) == 12
    assert train.spec.class_names == ("C4", "C#4", "D4") and train.x.shape[1:] == (1, 16000)
    assert np.array_equal(train.pitch, train.y.numpy() + 60)
    assert not set(train.speaker_names) & set(test.speaker_names)  # instrument-disjoint
    assert pitch_accuracy(yin_pitch(train.x, 16000), train.pitch) >= 0.9  # fluidsynth played the notes asked for


def test_midi_file_header_and_timing():
    data = A.note_midi_file(5, [(60, 100), (62, 90)], hold=0.5, spacing=1.0)
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    body = data[22:]
    assert body[:3] == bytes([0x00, 0xC0, 5])  # program change at t = 0
    assert bytes([0x90, 60, 100]) in body and bytes([0x90, 62, 90]) in body and body.endswith(bytes([0xFF, 0x2F, 0]))


# ------------------------------------------------------------------------------------------------------- audio_folder


def test_audio_folder_resamples_labels_and_fits_length(tmp_path):
    for split in ("train", "test"):
        for label, freq in (("high", 880), ("low", 220)):
            (tmp_path / split / label).mkdir(parents=True)
            sf.write(str(tmp_path / split / label / "a.wav"), sine(freq, 8000, 0.5), 8000)
            stereo = np.stack([sine(freq, 22050, 2.0), sine(freq, 22050, 2.0)], 1)
            sf.write(str(tmp_path / split / label / "b.flac"), stereo, 22050)
    cfg = DataConfig(name="audio_folder", root=str(tmp_path), sample_rate=16000, clip_seconds=1.0)
    ds = registry.dataset("audio_folder")(cfg, "train")
    assert ds.x.shape == (4, 1, 16000) and ds.spec.class_names == ("high", "low") and ds.y.tolist() == [0, 0, 1, 1]
    short = ds.x[0, 0].numpy()  # 0.5 s at 8 kHz -> 8000 samples at 16 kHz, then zeros
    assert np.abs(short[8100:]).max() == 0 and abs(peak_hz(short[:8000], 16000) - 880) < 4
    assert abs(peak_hz(ds.x[1, 0].numpy(), 16000) - 880) < 2  # the 22.05 kHz FLAC, stereo averaged and cut to 1 s
    assert ds.spec.modality == "waveform" and ds.sample_rate == 16000


def test_audio_folder_errors(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        registry.dataset("audio_folder")(DataConfig(name="audio_folder"), "train")
    with pytest.raises(DataError, match="no sound files"):
        registry.dataset("audio_folder")(DataConfig(name="audio_folder", root=str(tmp_path)), "train")
    sf.write(str(tmp_path / "nan.wav"), np.array([0.0, np.nan, 0.5], np.float32), 8000, subtype="FLOAT")
    with pytest.raises(DataError, match="NaN"):
        registry.dataset("audio_folder")(DataConfig(name="audio_folder", root=str(tmp_path)), "train")


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(st.binary(max_size=300), st.just(b""), st.sampled_from([b"RIFF", b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC\x00"])),
    suffix=st.sampled_from([".wav", ".flac", ".ogg"]),
    rate=st.sampled_from([1000, 8000, 44100]),
)
def test_fuzzed_files_give_a_data_error(tmp_path, content, suffix, rate):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    (folder / "a").mkdir()
    sf.write(str(folder / "a" / "good.wav"), sine(100, 8000, 0.1), 8000)
    (folder / "a" / f"odd{suffix}").write_bytes(content)
    cfg = DataConfig(name="audio_folder", root=str(folder), sample_rate=rate, clip_seconds=0.05)
    try:
        for split in ("train", "test"):
            ds = registry.dataset("audio_folder")(cfg, split)
            assert ds.x.shape[1:] == (1, round(0.05 * rate)) and bool(torch.isfinite(ds.x).all())
    except DataError as e:
        assert "odd" in str(e) or "no sound" in str(e)


def test_tiny_and_weird_rate_files_load(tmp_path):
    (tmp_path / "x").mkdir()
    sf.write(str(tmp_path / "x" / "one.wav"), np.array([0.25], np.float32), 1234)  # one sample at an odd rate
    ds = registry.dataset("audio_folder")(DataConfig(name="audio_folder", root=str(tmp_path), clip_seconds=0.01), "train")
    assert ds.x.shape == (1, 1, 160) and bool(torch.isfinite(ds.x).all())


# ---------------------------------------------------------------------------------------------------- Speech Commands


def _speech_commands_tar(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(tmp_path / "sc.tar.gz", "w:gz") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for d, word in enumerate(A.DIGITS):
            for spk in ("aaa", "bbb"):
                buf = io.BytesIO()
                sf.write(buf, sine(200 + 50 * d, 16000, 0.5), 16000, format="WAV")
                add(f"{word}/{spk}_nohash_0.wav", buf.getvalue())
        add("testing_list.txt", "\n".join(f"{w}/bbb_nohash_0.wav" for w in A.DIGITS).encode())
        add("validation_list.txt", b"")
        add("cat/aaa_nohash_0.wav", b"not a digit")
        add("../escape.txt", b"outside")
    return tmp_path / "sc.tar.gz"


def test_speech_commands_download_and_load(tmp_path):
    archive = _speech_commands_tar(tmp_path)
    digest = __import__("hashlib").sha256(archive.read_bytes()).hexdigest()
    dest = A.download_speech_commands(tmp_path / "sc", archive.as_uri(), sha256=digest)
    assert (dest / "zero" / "aaa_nohash_0.wav").is_file() and not (dest / "cat").exists() and not (tmp_path / "escape.txt").exists()
    cfg = DataConfig(name="spoken_digits", root=str(dest))
    train, test = (registry.dataset("spoken_digits")(cfg, s) for s in ("train", "test"))
    assert train.x.shape == (10, 1, 16000) and test.speaker_names == ("bbb",) and train.speaker_names == ("aaa",)
    assert abs(peak_hz(test.x[3, 0].numpy(), 16000) - 350) < 3
    with pytest.raises(DataError, match="SHA-256"):
        A.download_speech_commands(tmp_path / "sc2", archive.as_uri(), sha256="0" * 64)
    with pytest.raises(DataError, match="could not download"):
        A.download_speech_commands(tmp_path / "sc3", (tmp_path / "missing.tar.gz").as_uri())


def test_manifest_of_another_format_is_refused(tiny_digits, tmp_path):
    dest, _ = tiny_digits
    for f in ("train.npz", "test.npz", "manifest.json"):
        shutil.copy(dest / f, tmp_path / f)
    m = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / "manifest.json").write_text(json.dumps({**m, "version": 0}))
    with pytest.raises(DataError, match="rebuild"):
        registry.dataset("spoken_digits")(DataConfig(name="spoken_digits", root=str(tmp_path)), "train")
