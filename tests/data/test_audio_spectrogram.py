"""Audio as log-mel images (genlab.data.audio_spectrogram): where a tone lands, Griffin-Lim converging to a consistent
spectrogram, the round trip sound -> image -> sound -> image, seeding and peak, the parameters kept in the DataSpec."""

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab.data.audio import PEAK, hz_to_mel, mel_to_hz
from genlab.data.audio_spectrogram import (
    MelParams,
    griffin_lim,
    mel_image,
    mel_images_of,
    mel_magnitude,
    mel_to_waveform,
    spectral_convergence,
)
from genlab.errors import DataError
from genlab.spec import DataSpec

pytestmark = pytest.mark.usefixtures("one_thread")

P = MelParams()
T = torch.arange(P.length, dtype=torch.float64) / P.sample_rate


def tone(hz: float, amp: float = 0.5) -> torch.Tensor:
    return (amp * torch.sin(2 * torch.pi * hz * T)).float()[None, None]


def voice(f0: float = 140.0, seed: int = 0) -> torch.Tensor:
    """A vowel-like sound: 12 harmonics of a gliding f0 under a formant-ish envelope, faded in and out."""
    g = torch.Generator().manual_seed(seed)
    f = f0 * (1 + 0.2 * T)  # glide
    phase = 2 * torch.pi * torch.cumsum(f, 0) / P.sample_rate
    amps = torch.rand(12, generator=g, dtype=torch.float64) * torch.exp(-torch.arange(12) / 4)
    x = sum(a * torch.sin((k + 1) * phase) for k, a in enumerate(amps))
    env = torch.sin(torch.pi * torch.clamp((T - 0.2) / 0.6, 0, 1)) ** 2
    x = x * env
    return (0.9 * x / x.abs().max()).float()[None, None]


def test_a_tone_is_loudest_in_its_mel_band_and_images_span_minus_one_to_one():
    for hz in (300.0, 1000.0, 2500.0):
        img = mel_image(tone(hz), P)
        assert img.shape == (1, 1, P.n_mels, P.frames)
        assert img.max() == pytest.approx(1.0) and img.min() >= -1.0
        points = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(P.sample_rate / 2), P.n_mels + 2))[1:-1]
        assert int(img[0, 0].mean(dim=1).argmax()) == int(np.abs(points - hz).argmin())


def test_griffin_lim_converges_to_a_consistent_spectrogram():
    x = voice()
    mag = torch.stft(x[:, 0], P.n_fft, P.hop, window=torch.hann_window(P.n_fft), return_complex=True).abs()
    start = spectral_convergence(griffin_lim(mag, P, iters=0), mag, P).item()
    classic = spectral_convergence(griffin_lim(mag, P, iters=32, momentum=0.0), mag, P).item()
    fast = spectral_convergence(griffin_lim(mag, P, iters=32), mag, P).item()
    assert fast < classic < start and fast < 0.3 * start, (start, classic, fast)


def test_sound_to_image_to_sound_to_image_keeps_the_image():
    x = torch.cat([voice(120, 0), voice(200, 1), tone(700)])
    img = mel_image(x, P)
    back = mel_image(mel_to_waveform(img, P), P)
    loud = img > 0  # bins within 40 dB of each clip's peak
    err = (back - img)[loud].abs().mean().item() * P.floor_db / 2
    assert err < 3.0, f"{err:.2f} dB"  # what is heard is what the image says
    noise = mel_image(torch.randn(3, 1, P.length) * 0.3, P)
    assert (noise - img)[loud].abs().mean().item() * P.floor_db / 2 > 4 * err


def test_inversion_is_seeded_and_peak_normalised():
    img = mel_image(torch.cat([voice(150), tone(440, 0.1)]), P)
    a, b = mel_to_waveform(img, P, seed=3), mel_to_waveform(img, P, seed=3)
    assert a.shape == (2, 1, P.length) and torch.equal(a, b)
    assert not torch.equal(a, mel_to_waveform(img, P, seed=4))
    assert torch.allclose(a.abs().amax(dim=-1), torch.full((2, 1), PEAK))


def test_pseudo_inverse_magnitude_puts_energy_where_the_image_has_it():
    mag = mel_magnitude(mel_image(tone(1000.0), P), P)
    assert mag.shape == (1, P.n_fft // 2 + 1, P.length // P.hop + 1) and mag.min() >= 0
    freqs = torch.linspace(0, P.sample_rate / 2, P.n_fft // 2 + 1)
    assert abs(freqs[mag[0].mean(dim=1).argmax()].item() - 1000.0) < 150


def test_params_are_checked_and_travel_in_the_spec():
    with pytest.raises(DataError, match="frames=40"):
        MelParams(frames=40)
    with pytest.raises(DataError, match="n_mels=300"):
        MelParams(n_mels=300)
    with pytest.raises(DataError, match="hop <= n_fft"):
        MelParams(hop=600)
    spec = MelParams(n_mels=24, frames=30).spec(("a", "b"))
    assert spec.shape == (1, 24, 30) and spec.modality == "spectrogram" and spec.encoding == "continuous"
    again = DataSpec.from_dict(spec.to_dict())
    assert again == spec and MelParams.from_spec(again) == MelParams(n_mels=24, frames=30)
    assert spec.param("hop") == 250
    with pytest.raises(KeyError, match="no parameter 'window'"):
        spec.param("window")
    with pytest.raises(DataError, match="lacks"):
        MelParams.from_spec(DataSpec((1, 32, 32), modality="spectrogram"))
    with pytest.raises(DataError, match=r"\(N, 1, 8000\)"):
        mel_image(torch.zeros(2, 8000), P)
    assert mel_images_of(np.zeros((2, P.length)) + 0.1 * np.sin(np.arange(P.length))).shape == (2, 1, 32, 32)
