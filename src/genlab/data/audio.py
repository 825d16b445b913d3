"""Audio datasets as float32 waveforms N x 1 x T in [-1, 1]: SC09-style spoken digits (Donahue et al. 2019, "Adversarial
Audio Synthesis"; Warden 2018, "Speech Commands") built offline from Debian's recordings and speech synthesisers,
NSynth-style single notes (Engel et al. 2017) rendered with fluidsynth, and any folder of WAV/FLAC files."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from genlab.checkpoint import atomic_write
from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

FORMAT_VERSION = 1
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PEAK = 0.9  # every built clip is peak-normalised to this amplitude
SILENCE_DB = 40.0  # frames more than this below the loudest 10 ms frame count as silence when trimming
TEST_FRACTION = 0.1
SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"

# espeak-ng speakers are (accent voice, voice variant); the variants below never appear in the training split.
ESPEAK_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
ESPEAK_TEST_VARIANTS = (
    "Alicia",
    "Annie",
    "caleb",
    "Gene",
    "iven3",
    "Marco",
    "michel",
    "robosoft4",
    "steph2",
    "anika",
    "f3",
    "klatt4",
    "m5",
    "travis",
)  # fmt: skip  (variant file names, as `-v voice+variant` takes them)
ESPEAK_SKIP_VARIANTS = ("whisper", "whisperf", "fast")  # no voicing, or a test fixture
FLITE_VOICES = {"awb": "train", "rms": "train", "kal": "train", "kal16": "train", "slt": "test"}  # kal16 is kal: both in train
FESTIVAL_VOICES = {"kal_diphone": "train"}  # festival's kal is flite's kal again
ASTERISK_DIRS = ("/usr/share/asterisk/sounds/en/digits", "/usr/share/asterisk/sounds/en_US_f_Allison/digits")
TAPE_SPEEDS = (0.9, 1.0, 1.1)  # the real speaker's takes: her recording played faster / slower (pitch and tempo together)

# notes: General MIDI programs per NSynth instrument family; the second program of each family is held out for test.
NOTE_FAMILIES = {
    "keyboard": (0, 4, 2),
    "mallet": (11, 12, 8),
    "organ": (19, 21, 20),  # 16-18 (drawbar, percussive, rock) sound with sub-octave stops: their pitch is not the note
    "guitar": (24, 26, 25),
    "bass": (33, 32, 38),
    "string": (40, 42, 48),
    "vocal": (52, 53),
    "brass": (56, 61, 57),
    "reed": (65, 71, 68),
    "flute": (73, 75, 72),
    "synth_lead": (80, 81, 82),
}
NOTE_LOW, NOTE_HIGH = 48, 72  # C3 .. C5, MIDI numbers
NOTE_VELOCITIES = (75, 110)
NOTE_HOLD = 0.75  # seconds each note is held (the clip is 1 s: hold + release)
NOTE_SPACING = 2.0  # seconds between note onsets in a rendered MIDI file
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")


# ---------------------------------------------------------------------------------------------------------------- I/O


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A sound file as (float32 mono samples (n,) in [-1, 1], sample rate); channels are averaged.

    Every failure is a DataError naming the file: unreadable or empty files, non-finite samples."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors, format errors, truncated headers
        raise DataError(f"{path}: not a readable sound file ({e}); remove it or replace it") from None
    if data.size == 0:
        raise DataError(f"{path}: holds no samples; remove it")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: holds NaN or infinite samples; remove it or replace it")
    return np.clip(data.mean(1), -1.0, 1.0).astype(np.float32), int(rate)


def write_wav(path: str | os.PathLike, x: np.ndarray | torch.Tensor, sample_rate: int) -> Path:
    """Write mono samples in [-1, 1] (clipped) as a 16-bit PCM WAV file, atomically."""
    import soundfile as sf

    x = np.clip(np.asarray(x.detach().cpu() if torch.is_tensor(x) else x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    path = Path(path)
    atomic_write(path, lambda tmp: sf.write(tmp, x, int(sample_rate), subtype="PCM_16", format="WAV"))
    return path


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling along the last axis by the rational factor rate_out / rate_in (polyphase FIR,
    scipy.signal.resample_poly with its Kaiser window); float32."""
    if rate_in == rate_out:
        return np.asarray(x, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(np.asarray(x, dtype=np.float64), rate_out // g, rate_in // g, axis=-1).astype(np.float32)


def voiced_span(x: np.ndarray, sample_rate: int, silence_db: float = SILENCE_DB) -> tuple[int, int]:
    """(start, end) of the part of `x` between the first and the last 10 ms frame whose RMS is within `silence_db`
    of the loudest frame's; (0, 0) for an all-zero signal."""
    hop = max(1, sample_rate // 100)
    n = len(x) // hop * hop
    frames = x[:n].reshape(-1, hop) if n else x[None, :]
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(1))
    if rms.max() <= 0:
        return 0, 0
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-silence_db / 20))
    return int(loud[0] * hop), int(min(len(x), (loud[-1] + 1) * hop))


def centre_clip(x: np.ndarray, length: int, sample_rate: int, *, trim: bool = True) -> np.ndarray:
    """`x` trimmed of leading and trailing silence (`voiced_span`) and centred in `length` samples: zero-padded
    both sides, or its centre kept when longer. Without `trim`, the whole signal is centred."""
    a, b = voiced_span(x, sample_rate) if trim else (0, len(x))
    x = x[a:b]
    out = np.zeros(length, np.float32)
    if len(x) >= length:
        s = (len(x) - length) // 2
        out[:] = x[s : s + length]
    else:
        s = (length - len(x)) // 2
        out[s : s + len(x)] = x
    return out


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """The first `length` samples of `x` along the last axis, zero-padded at the end when shorter."""
    if x.shape[-1] >= length:
        return x[..., :length]
    pad = np.zeros((*x.shape[:-1], length - x.shape[-1]), x.dtype)
    return np.concatenate([x, pad], -1)


def peak_normalize(x: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """x * peak / max|x| (a silent clip stays silent)."""
    m = float(np.abs(x).max()) if x.size else 0.0
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def from_int16(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) / 32767).clip(-1, 1)


def note_name(midi: int) -> str:
    """MIDI number -> scientific pitch name: 60 -> "C4", 69 -> "A4"."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def note_to_midi(name: str) -> int | None:
    """Scientific pitch name -> MIDI number ("A4" -> 69), or None when `name` is not one."""
    for k in sorted(range(12), key=lambda i: -len(NOTE_NAMES[i])):
        if name.startswith(NOTE_NAMES[k]):
            rest = name[len(NOTE_NAMES[k]) :]
            if rest.lstrip("-").isdigit():
                return (int(rest) + 1) * 12 + k
    return None


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Equal temperament with A4 = 440 Hz: f = 440 * 2^((m - 69) / 12)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69) / 12)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale: m = 2595 log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, sample_rate: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Triangular filters (n_mels, n_fft // 2 + 1) on the HTK mel scale: filter k rises linearly from mel point k to 1 at
    point k + 1 and falls to 0 at point k + 2, the n_mels + 2 points equally spaced in mel between fmin and fmax
    (default sample_rate / 2); peak height 1 (no area normalisation)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = points[:-2, None], points[1:-1, None], points[2:, None]
    rise = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    fall = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return torch.from_numpy(np.maximum(0.0, np.minimum(rise, fall))).float()


def log_mel(
    x: torch.Tensor, sample_rate: int, *, n_fft: int, hop: int, n_mels: int, fmax: float | None = None, floor_db: float = 80.0
) -> torch.Tensor:
    """Log-mel spectrogram in dB relative to each clip's loudest bin, clamped to [-floor_db, 0]: (..., T) -> (..., n_mels,
    frames). |STFT|^2 with a periodic Hann window (torch.stft, centred, reflect padding), mel filters, 10 log10."""
    shape = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1]).float()
    spec = torch.stft(
        flat, n_fft, hop, window=torch.hann_window(n_fft, device=x.device), center=True, pad_mode="reflect", return_complex=True
    )
    mel = mel_filterbank(n_fft, sample_rate, n_mels, fmax=fmax).to(x.device) @ spec.abs().square()
    db = 10 * torch.log10(mel.clamp(min=1e-10))
    db = (db - db.amax(dim=(-2, -1), keepdim=True)).clamp(min=-floor_db)
    return db.reshape(*shape, n_mels, db.shape[-1])


# ----------------------------------------------------------------------------------------------------------- datasets


@dataclass
class AudioDataset(ArrayDataset):
    """Clips `x` float32 (N, 1, T) in [-1, 1] at `sample_rate` Hz, labels `y`; `speakers` (N,) indexes `speaker_names`
    (the voice or instrument of each clip); notes add `pitch` (N,) MIDI numbers and `family` (N,) into `family_names`."""

    sample_rate: int = 16000
    speakers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    speaker_names: tuple[str, ...] = ()
    pitch: np.ndarray | None = None
    family: np.ndarray | None = None
    family_names: tuple[str, ...] = ()


def waveform_spec(length: int, sample_rate: int, class_names: Sequence[str]) -> DataSpec:
    """The DataSpec of mono clips (1, length) in [-1, 1] at `sample_rate` samples per second."""
    return DataSpec(
        shape=(1, length),
        num_classes=len(class_names),
        encoding="continuous",
        class_names=tuple(class_names),
        modality="waveform",
        sample_rate=sample_rate,
    )


def data_home(name: str) -> Path:
    """Where built data live: $GENLAB_DATA/<name>, else ~/.cache/genlab/<name> (as for the downloaded sets)."""
    data_env = os.environ.get("GENLAB_DATA")
    return Path(data_env) / name if data_env else Path.home() / ".cache" / "genlab" / name


def save_split(folder: Path, split: str, arrays: dict[str, np.ndarray]) -> str:
    """Write `<folder>/<split>.npz` atomically; its SHA-256."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    path = folder / f"{split}.npz"
    atomic_write(path, write)
    return hashlib.sha256(path.read_bytes()).hexdigest()


_LOADED: dict[tuple, AudioDataset] = {}


def resampled(folder: Path, split: str, x: np.ndarray, rate0: int, rate: int, source_sha256: str) -> np.ndarray:
    """int16 clips (N, T) resampled from rate0 to rate, cached beside the build as `<split>_<rate>hz.npz` (keyed by the
    SHA-256 of the split's file; a read-only folder is simply not cached)."""
    cache = folder / f"{split}_{rate}hz.npz"
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["source_sha256"]) == source_sha256:
                return z["x"]
    parts = [to_int16(resample(from_int16(x[s : s + 1000]), rate0, rate)) for s in range(0, len(x), 1000)]
    out = np.concatenate(parts) if parts else np.zeros((0, math.ceil(x.shape[1] * rate / rate0)), np.int16)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, x=out, source_sha256=np.array(source_sha256))

    try:
        atomic_write(cache, write)
    except OSError:
        pass  # a read-only data folder: resample again next time
    return out


def load_built(folder: Path, split: str, name: str, sample_rate: int | None = None, clip_seconds: float | None = None) -> AudioDataset:
    """A built split (`<folder>/<split>.npz` + manifest.json), resampled to `sample_rate` and cut / padded (centred)
    to `clip_seconds` when given; kept in memory."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    path, manifest_path = folder / f"{split}.npz", folder / "manifest.json"
    if not path.is_file() or not manifest_path.is_file():
        raise DataError(f"{folder}: no built {name} data ({path.name} and manifest.json); build it with `genlab data build {name}`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("version") != FORMAT_VERSION:
        raise DataError(f"{folder}: built by another genlab (format {manifest.get('version')}); rebuild with `genlab data build {name}`")
    rate0 = int(manifest["sample_rate"])
    rate = sample_rate or rate0
    key = (str(path), path.stat().st_mtime_ns, rate, clip_seconds)
    if key not in _LOADED:
        with np.load(path) as z:
            a = {k: z[k] for k in z.files}
        x = (
            from_int16(a["x"])
            if rate == rate0
            else from_int16(resampled(folder, split, a["x"], rate0, rate, manifest["sha256"][path.name]))
        )
        length = round((clip_seconds or manifest["clip_seconds"]) * rate)
        if length != x.shape[-1]:
            x = np.stack([centre_clip(c, length, rate, trim=False) for c in x]) if len(x) else np.zeros((0, length), np.float32)
        names = tuple(str(s) for s in a["class_names"])
        _LOADED[key] = AudioDataset(
            x=torch.from_numpy(np.ascontiguousarray(x.clip(-1, 1), dtype=np.float32))[:, None],
            y=torch.from_numpy(a["y"].astype(np.int64)),
            spec=waveform_spec(length, rate, names),
            name=name,
            sample_rate=rate,
            speakers=a["speaker"].astype(np.int64),
            speaker_names=tuple(str(s) for s in a["speaker_names"]),
            pitch=a["pitch"].astype(np.int64) if "pitch" in a else None,
            family=a["family"].astype(np.int64) if "family" in a else None,
            family_names=tuple(str(s) for s in a.get("family_names", ())),
        )
    return _LOADED[key]


# ------------------------------------------------------------------------------------------------ spoken digits: build


@dataclass(frozen=True)
class Take:
    """One clip to make: `engine` says `voice` (or plays a recording) saying `digit` at `speed` (words per minute; for
    recordings the tape-speed factor; for flite and festival a duration stretch) and `pitch` (espeak-ng 0-99; for flite a
    factor on the voice's mean F0; 0 = the voice's own)."""

    engine: str
    voice: str
    digit: int
    speed: float
    pitch: float
    split: str

    @property
    def speaker(self) -> str:
        return f"{self.engine}:{self.voice}"


@dataclass(frozen=True)
class DigitProfile:
    """What a spoken-digits build contains."""

    espeak_voices: tuple[str, ...]
    espeak_variants: tuple[str, ...] | None  # None: every installed variant (minus ESPEAK_SKIP_VARIANTS); "" = no variant
    takes: int  # utterances per (speaker, digit) for espeak-ng
    flite: bool = True
    festival: bool = True
    asterisk: bool = True


DIGIT_PROFILES = {
    "full": DigitProfile(ESPEAK_VOICES, None, takes=2),
    "tiny": DigitProfile(("en-us",), ("", "Alicia"), takes=1, flite=False, festival=False, asterisk=False),
}


def _seeded(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


@lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    """The voice variants installed with espeak-ng, sorted: their file names (`espeak-ng --voices=variant`, column
    File without "!v/"), keeping only those that change the voice (espeak-ng falls back to the plain voice, silently,
    for a name it does not know)."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = sorted({cols[4].removeprefix("!v/") for cols in (line.split() for line in out.splitlines()[1:]) if len(cols) >= 5})
    plain = _run(["espeak-ng", "-v", "en-us", "--stdout", "seven"], "spoken_digits")
    with ThreadPoolExecutor(4) as pool:
        said = list(pool.map(lambda v: _run(["espeak-ng", "-v", f"en-us+{v}", "--stdout", "seven"], "spoken_digits"), names))
    return tuple(v for v, wav in zip(names, said, strict=True) if wav != plain)


def digit_takes(profile: DigitProfile) -> list[Take]:
    """Every clip of a build, in a fixed order; speeds and pitches drawn from a generator seeded by the clip's name."""
    takes = []
    variants = profile.espeak_variants
    if variants is None:
        variants = ("", *(v for v in espeak_variants() if v not in ESPEAK_SKIP_VARIANTS))
    for voice in profile.espeak_voices:
        for variant in variants:
            name = f"{voice}+{variant}" if variant else voice
            split = "test" if variant in ESPEAK_TEST_VARIANTS else "train"
            for d in range(10):
                for t in range(profile.takes):
                    g = _seeded("espeak", name, d, t)
                    takes.append(Take("espeak-ng", name, d, float(g.integers(130, 221)), float(g.integers(25, 76)), split))
    if profile.flite:
        for voice, split in FLITE_VOICES.items():
            for d in range(10):
                for stretch in (0.85, 1.0, 1.2):
                    for f0 in (0.0, 0.85, 1.2):
                        takes.append(Take("flite", voice, d, stretch, f0, split))
    if profile.festival:
        for voice, split in FESTIVAL_VOICES.items():
            for d in range(10):
                for stretch in (0.85, 1.0, 1.2):
                    takes.append(Take("festival", voice, d, stretch, 0.0, split))
    if profile.asterisk:
        for d in range(10):
            for speed in TAPE_SPEEDS:
                takes.append(Take("asterisk", "allison", d, speed, 0.0, "test"))
    return takes


FLITE_F0 = {"awb": 120.0, "rms": 110.0, "kal": 105.0, "kal16": 105.0, "slt": 180.0}  # the voices' own mean F0 (Hz)


def _run(cmd: Sequence[str], what: str) -> bytes:
    try:
        return subprocess.run(list(cmd), capture_output=True, check=True, timeout=60).stdout
    except FileNotFoundError:
        raise DataError(
            f"{cmd[0]} is not installed: {what} needs it (Debian: apt-get install {cmd[0]}); see scripts/get_audio.sh"
        ) from None
    except subprocess.CalledProcessError as e:
        raise DataError(f"{' '.join(cmd)} failed ({e.stderr.decode(errors='replace').strip()[:300]})") from None
    except subprocess.TimeoutExpired:
        raise DataError(f"{' '.join(cmd)} did not finish in 60 s") from None


def synthesize(take: Take) -> tuple[np.ndarray, int]:
    """The raw audio of one take: (float32 mono, sample rate)."""
    import soundfile as sf

    word = DIGITS[take.digit]
    if take.engine == "espeak-ng":
        wav = _run(
            ["espeak-ng", "-v", take.voice, "-s", str(int(take.speed)), "-p", str(int(take.pitch)), "--stdout", word], "spoken_digits"
        )
        data, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        return data.mean(1), rate
    if take.engine == "asterisk":
        folder = next((Path(d) for d in ASTERISK_DIRS if (Path(d) / "0.wav").is_file()), None)
        if folder is None:
            raise DataError("the asterisk digit recordings are missing (Debian: apt-get install asterisk-core-sounds-en-wav)")
        x, rate = read_audio(folder / f"{take.digit}.wav")
        return x, round(rate * take.speed)  # played at speed x: the same samples at a faster clock
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.wav"
        if take.engine == "flite":
            cmd = ["flite", "-voice", take.voice, "--setf", f"duration_stretch={take.speed}"]
            if take.pitch:
                cmd += ["--setf", f"int_f0_target_mean={FLITE_F0[take.voice] * take.pitch:.0f}"]
            _run([*cmd, "-t", word, "-o", str(out)], "spoken_digits")
        else:
            script = Path(tmp) / "word.txt"
            script.write_text(word)
            _run(["text2wave", "-eval", f"(Parameter.set 'Duration_Stretch {take.speed})", "-o", str(out), str(script)], "spoken_digits")
        x, rate = read_audio(out)
        return x, rate


def make_clip(take: Take, sample_rate: int, length: int) -> np.ndarray:
    """A take as a built clip: resampled, silence trimmed, centred in `length` samples, peak-normalised."""
    x, rate = synthesize(take)
    return peak_normalize(centre_clip(resample(x, rate, sample_rate), length, sample_rate))


def tool_versions() -> dict[str, str]:
    """Versions of the programs a build ran (recorded in its manifest)."""
    out = {}
    for cmd in (["espeak-ng", "--version"], ["flite", "--version"], ["fluidsynth", "--version"]):
        if shutil.which(cmd[0]):
            text = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()
            out[cmd[0]] = text[0] if text else "?"
    return out


def _write_build(dest: Path, name: str, sample_rate: int, clip_seconds: float, splits: dict[str, dict], extra: dict, start: float) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "version": FORMAT_VERSION, "sample_rate": sample_rate, "clip_seconds": clip_seconds, **extra}
    manifest["sizes"] = {s: int(len(a["y"])) for s, a in splits.items()}
    manifest["speakers"] = {s: int(len(np.unique(a["speaker"]))) for s, a in splits.items()}
    manifest["sha256"] = {f"{s}.npz": save_split(dest, s, a) for s, a in splits.items()}
    manifest["tools"] = tool_versions()
    manifest["build_seconds"] = round(time.perf_counter() - start, 1)
    atomic_write(dest / "manifest.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n"))
    return manifest


def _split_arrays(clips: list[np.ndarray], takes: Sequence[Take], split: str, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The npz arrays of one split: x int16 (N, T), y, speaker (indices into speaker_names, sorted), class_names."""
    mine = [i for i, t in enumerate(takes) if t.split == split]
    names = sorted({takes[i].speaker for i in mine})
    return {
        "x": np.stack([to_int16(clips[i]) for i in mine]) if mine else np.zeros((0, len(clips[0]) if clips else 0), np.int16),
        "y": np.array([takes[i].digit for i in mine], np.int64),
        "speaker": np.array([names.index(takes[i].speaker) for i in mine], np.int64),
        "speaker_names": np.array(names, dtype=str),
        "class_names": np.array(class_names, dtype=str),
    }


def build_spoken_digits(
    dest: str | os.PathLike | None = None,
    *,
    profile: str = "full",
    sample_rate: int = 16000,
    clip_seconds: float = 1.0,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Build the spoken-digits set into `dest` (default `data_home("spoken_digits")`): train.npz, test.npz, manifest.json.

    Speakers: the asterisk recordings (one real speaker, test only, at three tape speeds), espeak-ng's accents x voice
    variants (ESPEAK_TEST_VARIANTS held out for test), flite's and festival's voices (slt held out). Each clip is
    resampled to `sample_rate`, trimmed of silence, centred in `clip_seconds` and peak-normalised to PEAK; stored as
    int16. The same programs give byte-identical files (the manifest records their SHA-256). Returns the manifest.
    """
    if profile not in DIGIT_PROFILES:
        raise DataError(f"unknown spoken_digits profile {profile!r}: expected one of {', '.join(DIGIT_PROFILES)}")
    dest = Path(dest) if dest is not None else data_home("spoken_digits")
    start = time.perf_counter()
    takes = digit_takes(DIGIT_PROFILES[profile])
    length = round(clip_seconds * sample_rate)
    clips: list[np.ndarray] = [np.zeros(0)] * len(takes)
    with ThreadPoolExecutor(max(1, workers)) as pool:  # the work is in the synthesiser processes
        for i, clip in enumerate(pool.map(lambda t: make_clip(t, sample_rate, length), takes)):
            clips[i] = clip
            if progress is not None:
                progress(i + 1, len(takes))
    splits = {s: _split_arrays(clips, takes, s, DIGITS) for s in ("train", "test")}
    return _write_build(dest, "spoken_digits", sample_rate, clip_seconds, splits, {"profile": profile}, start)


# -------------------------------------------------------------------------------------- spoken digits: Speech Commands


def download_speech_commands(
    dest: str | os.PathLike, url: str = SPEECH_COMMANDS_URL, *, sha256: str | None = None, timeout: float = 60.0
) -> Path:
    """Download the Speech Commands archive (Warden 2018) from `url` and unpack its ten digit folders and the split
    lists into `dest` (members outside them, links and absolute paths are skipped); the SHA-256 is checked when given.
    Returns `dest`. Load it with data.root=<dest>: the SC09 subset, split by the archive's own lists."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = set(DIGITS)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(archive, "wb") as f:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except OSError as e:
            raise DataError(f"could not download {url} ({e}); put an unpacked Speech Commands folder somewhere and set data.root") from None
        if sha256 is not None and h.hexdigest() != sha256:
            raise DataError(f"{url}: SHA-256 {h.hexdigest()} but {sha256} was expected; the download is corrupt")
        try:
            with tarfile.open(archive) as tar:
                members = [
                    m
                    for m in tar.getmembers()
                    if m.isfile()
                    and not m.name.startswith(("/", ".."))
                    and ".." not in Path(m.name).parts
                    and (Path(m.name).parts[0] in wanted or m.name in ("testing_list.txt", "validation_list.txt"))
                ]
                tar.extractall(dest, members=members, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise DataError(f"{url}: not a readable tar archive ({e})") from None
    return dest


def is_speech_commands(folder: Path) -> bool:
    return all((folder / d).is_dir() for d in DIGITS)


def load_speech_commands(folder: Path, split: str, sample_rate: int, clip_seconds: float) -> AudioDataset:
    """The SC09 subset of an unpacked Speech Commands folder: train = every digit clip not named in testing_list.txt
    or validation_list.txt, test = those in testing_list.txt; speakers from the file names (<speaker>_nohash_<k>.wav).
    Clips are resampled and centred (not trimmed) in `clip_seconds`; not normalised (the recordings' own levels)."""
    listed = {}
    for name in ("testing_list.txt", "validation_list.txt"):
        p = folder / name
        listed[name] = set(p.read_text().split()) if p.is_file() else set()
    files = []
    for d, word in enumerate(DIGITS):
        for f in sorted((folder / word).glob("*.wav")):
            rel = f"{word}/{f.name}"
            where = "test" if rel in listed["testing_list.txt"] else "valid" if rel in listed["validation_list.txt"] else "train"
            if where == split:
                files.append((f, d, f.name.split("_nohash_")[0]))
    if not files:
        raise DataError(f"{folder}: no {split} clips of the ten digits (expected zero/ ... nine/ with .wav files and testing_list.txt)")
    length = round(clip_seconds * sample_rate)
    clips = []
    for f, _, _ in files:
        x, rate = read_audio(f)
        clips.append(centre_clip(resample(x, rate, sample_rate), length, sample_rate, trim=False))
    names = sorted({s for _, _, s in files})
    return AudioDataset(
        x=torch.from_numpy(np.stack(clips))[:, None],
        y=torch.tensor([d for _, d, _ in files], dtype=torch.int64),
        spec=waveform_spec(length, sample_rate, DIGITS),
        name="spoken_digits",
        sample_rate=sample_rate,
        speakers=np.array([names.index(s) for _, _, s in files], np.int64),
        speaker_names=tuple(names),
    )


def synthesisers_available() -> bool:
    return shutil.which("espeak-ng") is not None


def load_digits(cfg: DataConfig, split: str, name: str, sample_rate: int, clip_seconds: float) -> AudioDataset:
    """spoken_digits from data.root (a built folder or an unpacked Speech Commands folder) or the data home, which is
    built on first use when espeak-ng is installed."""
    rate, seconds = cfg.sample_rate or sample_rate, cfg.clip_seconds or clip_seconds
    if cfg.root is not None:
        folder = Path(cfg.root).expanduser()
        if not folder.is_dir():
            raise DataError(f"data.root={cfg.root!r} is not a folder")
        if is_speech_commands(folder):
            key = (str(folder), split, rate, seconds)
            if key not in _LOADED:
                _LOADED[key] = load_speech_commands(folder, split, rate, seconds)
            return _LOADED[key]
        return load_built(folder, split, name, rate, seconds)
    folder = data_home("spoken_digits")
    if not (folder / "manifest.json").is_file():
        if not synthesisers_available():
            raise DataError(
                f"spoken_digits is not built in {folder} and espeak-ng is not installed to build it: run scripts/get_audio.sh "
                "(installs Debian's espeak-ng, flite, festival, asterisk sounds, then builds), or set data.root to an unpacked "
                "Speech Commands folder (genlab.data.audio.download_speech_commands)"
            )
        import warnings

        warnings.warn(f"building spoken_digits into {folder} (a few minutes, once); `genlab data build spoken_digits` does it ahead")
        build_spoken_digits(folder)
    return load_built(folder, split, name, rate, seconds)


@register_dataset("spoken_digits")
def spoken_digits(cfg: DataConfig, split: str) -> AudioDataset:
    """SC09-style spoken digits "zero" ... "nine": 1 s at 16 kHz, mono, speaker-disjoint train / test splits (built
    offline; data.root may point at an unpacked Speech Commands folder for the real SC09)."""
    return load_digits(cfg, split, "spoken_digits", 16000, 1.0)


@register_dataset("spoken_digits_8k")
def spoken_digits_8k(cfg: DataConfig, split: str) -> AudioDataset:
    """spoken_digits at CPU size: 1 s at 8 kHz (8000 samples), resampled from the 16 kHz build."""
    return load_digits(cfg, split, "spoken_digits_8k", 8000, 1.0)


# -------------------------------------------------------------------------------------------------------------- notes


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def note_midi_file(program: int, notes: Sequence[tuple[int, int]], hold: float = NOTE_HOLD, spacing: float = NOTE_SPACING) -> bytes:
    """A type-0 standard MIDI file: `program` on channel 0 (channel 9 is drums), then each (pitch, velocity) held
    `hold` seconds, onsets `spacing` seconds apart (480 ticks per quarter at 120 bpm: 960 ticks per second)."""
    tps = 960
    ev = bytearray(_vlq(0) + bytes([0xC0, program]))
    gap = 0
    for pitch, velocity in notes:
        ev += _vlq(gap) + bytes([0x90, pitch, velocity])
        ev += _vlq(round(hold * tps)) + bytes([0x80, pitch, 0])
        gap = round((spacing - hold) * tps)
    ev += _vlq(gap) + bytes([0xFF, 0x2F, 0])
    return b"MThd" + (6).to_bytes(4, "big") + bytes([0, 0, 0, 1, 0x01, 0xE0]) + b"MTrk" + len(ev).to_bytes(4, "big") + bytes(ev)


def soundfont() -> Path:
    found = next((Path(p) for p in SOUNDFONTS if Path(p).is_file()), None)
    if found is None:
        raise DataError(
            f"no General MIDI soundfont ({' or '.join(SOUNDFONTS)}): apt-get install timgm6mb-soundfont (or fluid-soundfont-gm)"
        )
    return found


def render_notes(program: int, notes: Sequence[tuple[int, int]], sample_rate: int, sf2: Path) -> np.ndarray:
    """fluidsynth's rendering (reverb and chorus off) of `notes` played by `program`: float32 mono."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        mid, out = Path(tmp) / "notes.mid", Path(tmp) / "notes.wav"
        mid.write_bytes(note_midi_file(program, notes))
        _run(
            ["fluidsynth", "-ni", "-q", "-g", "1.0", "-r", str(sample_rate), "-o", "synth.reverb.active=0", "-o", "synth.chorus.active=0"]
            + ["-F", str(out), "-T", "wav", str(sf2), str(mid)],
            "notes",
        )
        data, _ = sf.read(str(out), dtype="float32", always_2d=True)
    return data.mean(1)


NOTE_PROFILES = {"full": (NOTE_FAMILIES, range(NOTE_LOW, NOTE_HIGH + 1)), "tiny": ({"keyboard": (0, 4), "organ": (19, 21)}, range(60, 63))}


def build_notes(
    dest: str | os.PathLike | None = None, *, profile: str = "full", sample_rate: int = 16000, clip_seconds: float = 1.0, workers: int = 2
) -> dict:
    """Build the notes set into `dest` (default `data_home("notes")`): every program of NOTE_FAMILIES plays every pitch
    C3..C5 at NOTE_VELOCITIES, held NOTE_HOLD s, cut from the note onset to `clip_seconds`, peak-normalised. y is the
    pitch class (class_names are note names), `pitch` the MIDI number, `family` the instrument family; the second program
    of each family is the test split (instrument-disjoint, as NSynth's). Notes a program cannot play (silent) are dropped."""
    if profile not in NOTE_PROFILES:
        raise DataError(f"unknown notes profile {profile!r}: expected one of {', '.join(NOTE_PROFILES)}")
    families, pitches = NOTE_PROFILES[profile]
    dest = Path(dest) if dest is not None else data_home("notes")
    start, sf2 = time.perf_counter(), soundfont()
    length = round(clip_seconds * sample_rate)
    played = [(p, v) for p in pitches for v in NOTE_VELOCITIES]
    programs = [(fam, prog, "test" if k == 1 else "train") for fam, progs in families.items() for k, prog in enumerate(progs)]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        audio = list(pool.map(lambda fp: render_notes(fp[1], played, sample_rate, sf2), programs))
    family_names = tuple(families)
    class_names = tuple(note_name(p) for p in pitches)
    rows: dict[str, list] = {"train": [], "test": []}
    for (fam, prog, split), wave in zip(programs, audio, strict=True):
        for k, (p, _) in enumerate(played):
            s = round(k * NOTE_SPACING * sample_rate)
            clip = fit_length(wave[s : s + length], length)
            if np.abs(clip).max() > 1e-3:
                rows[split].append((peak_normalize(clip), p, fam, f"program{prog:03d}"))
    splits = {}
    for split, r in rows.items():
        names = sorted({s for *_, s in r})
        splits[split] = {
            "x": np.stack([to_int16(c) for c, *_ in r]) if r else np.zeros((0, length), np.int16),
            "y": np.array([p - pitches[0] for _, p, _, _ in r], np.int64),
            "pitch": np.array([p for _, p, _, _ in r], np.int64),
            "family": np.array([family_names.index(f) for _, _, f, _ in r], np.int64),
            "family_names": np.array(family_names, dtype=str),
            "speaker": np.array([names.index(s) for *_, s in r], np.int64),
            "speaker_names": np.array(names, dtype=str),
            "class_names": np.array(class_names, dtype=str),
        }
    return _write_build(dest, "notes", sample_rate, clip_seconds, splits, {"profile": profile, "soundfont": sf2.name}, start)


@register_dataset("notes")
def notes(cfg: DataConfig, split: str) -> AudioDataset:
    """NSynth-style single notes C3..C5 (25 pitch classes, y = MIDI - 48) from 32 General MIDI programs in 11 instrument
    families, rendered with fluidsynth: 1 s at 16 kHz; test instruments are not in train. Built on first use."""
    folder = Path(cfg.root).expanduser() if cfg.root is not None else data_home("notes")
    if cfg.root is None and not (folder / "manifest.json").is_file():
        if shutil.which("fluidsynth") is None:
            raise DataError(f"notes is not built in {folder} and fluidsynth is not installed: run scripts/get_audio.sh")
        build_notes(folder)
    return load_built(folder, split, "notes", cfg.sample_rate, cfg.clip_seconds)


# ------------------------------------------------------------------------------------------------------- audio_folder


def list_audio(folder: Path) -> list[Path]:
    """Every sound file under `folder` (recursively, skipping hidden files and folders), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f.lower().endswith(AUDIO_EXTENSIONS)]
    return sorted(found)


def read_clip(path: Path, sample_rate: int, length: int) -> np.ndarray:
    """The first `length` samples of a sound file at `sample_rate` (zero-padded): only the input needed is resampled."""
    x, rate = read_audio(path)
    need = math.ceil(length * rate / sample_rate) + 64  # the filter's reach past the clip's end
    return fit_length(resample(x[:need], rate, sample_rate), length)


@register_dataset("audio_folder")
def audio_folder(cfg: DataConfig, split: str) -> AudioDataset:
    """The sound files (.wav, .flac, .ogg) under data.root as float32 N x 1 x T in [-1, 1]: mono (channels averaged),
    resampled to data.sample_rate (default 16000) with scipy.signal.resample_poly, cut or zero-padded at the end to
    data.clip_seconds (default 1). Labels are the sorted first-level sub-folders when every file lies in one (below
    train/ and test/ when both exist, which then give the splits); otherwise a seeded 10% is the test split."""
    if cfg.root is None:
        raise DataError("audio_folder needs the folder of sound files: set data.root=<folder>")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={cfg.root!r} is not a folder{'' if root.exists() else ' (it does not exist)'}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    g = torch.Generator().manual_seed(cfg.seed)
    if (root / "train").is_dir() and (root / "test").is_dir():
        bases = {s: root / s for s in ("train", "test")}
        files = {s: list_audio(root / s) for s in ("train", "test")}
    else:
        everything = list_audio(root)
        order = torch.randperm(len(everything), generator=g).tolist()
        n_test = round(TEST_FRACTION * len(everything)) if len(everything) >= 10 else min(1, max(0, len(everything) - 1))
        bases = {"train": root, "test": root}
        files = {"train": sorted(everything[i] for i in order[n_test:]), "test": sorted(everything[i] for i in order[:n_test])}
    if not files["train"] and not files["test"]:
        raise DataError(f"{root} holds no sound files: expected files ending in {', '.join(AUDIO_EXTENSIONS)} (in any sub-folder)")
    rel = {s: [p.relative_to(bases[s]).parts for p in f] for s, f in files.items()}
    labelled = all(len(parts) > 1 for r in rel.values() for parts in r)
    class_names = tuple(sorted({parts[0] for r in rel.values() for parts in r})) if labelled else ()
    rate = cfg.sample_rate or 16000
    length = round((cfg.clip_seconds or 1.0) * rate)
    if length < 1:
        raise DataError(f"data.clip_seconds={cfg.clip_seconds} at {rate} Hz is less than one sample")
    mine = files[split]
    x = np.stack([read_clip(p, rate, length) for p in mine]) if mine else np.zeros((0, length), np.float32)
    y = torch.tensor([class_names.index(parts[0]) for parts in rel[split]], dtype=torch.int64) if labelled else None
    return AudioDataset(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None],
        y=y,
        spec=waveform_spec(length, rate, class_names),
        name=root.name or str(root),
        sample_rate=rate,
        speakers=np.zeros(len(mine), np.int64),
    )


BUILDERS: dict[str, Callable[..., dict]] = {
    "spoken_digits": build_spoken_digits,
    "spoken_digits_8k": build_spoken_digits,
    "notes": build_notes,
}
"""The data sets built by `genlab data build NAME` (spoken_digits_8k is resampled from the spoken_digits build at load time)."""
