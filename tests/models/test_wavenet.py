"""WaveNet: mu-law companding (round trip, error bound), a proper density (sums to one over every pair of codes),
causality and the receptive field by perturbation, cached generation equal to the naive recompute, the cropped loss,
and that it learns label-dependent tones."""

import math

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab.errors import ConfigError
from genlab.models.autoregressive.wavenet import MU, WaveNet, WaveNetConfig
from genlab.nn.audio import mu_law_bin_widths, mu_law_compress, mu_law_decode, mu_law_encode
from genlab.spec import DataSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def wave_spec(T, K=0):
    return DataSpec((1, T), num_classes=K, encoding="continuous", modality="waveform")


def model(T=24, K=3, **kw):
    torch.manual_seed(0)
    kw = {"channels": 6, "skip_channels": 8, "layers_per_cycle": 3, "cycles": 2, "conditional": K > 0, **kw}
    return WaveNet(WaveNetConfig(**kw), wave_spec(T, K)).double().eval()


# ----------------------------------------------------------------------------------------------------------- mu-law
def test_mu_law_round_trip_on_codes_and_known_values():
    k = torch.arange(MU + 1)
    assert torch.equal(mu_law_encode(mu_law_decode(k, dtype=torch.float64)), k)
    assert mu_law_encode(torch.tensor([-1.0, 0.0, 1.0, -3.0, 3.0])).tolist() == [0, 128, 255, 0, 255]
    # f(x) = ln(1 + 255 x) / ln 256: x = 1 / 255 -> ln 2 / ln 256 = 1/8.
    assert mu_law_compress(torch.tensor([1 / 255], dtype=torch.float64)).item() == pytest.approx(1 / 8, abs=1e-15)


def test_mu_law_quantisation_error_bound():
    x = torch.linspace(-1, 1, 200_001, dtype=torch.float64)
    err = (x - mu_law_decode(mu_law_encode(x), dtype=torch.float64)).abs()
    # Mean value theorem on x = f^-1(g), |g - g_k| <= 1 / mu: |x - x_k| <= (1 / mu) max |df^-1/dg| over the bin,
    # df^-1/dg = ln(1 + mu) (1 + mu)^|g| / mu.
    g = mu_law_compress(x).abs()
    bound = math.log1p(MU) / MU**2 * (1 + MU) ** (g + 1 / MU).clamp(max=1)
    assert (err <= bound + 1e-12).all()
    assert err.max() == pytest.approx((1 + MU) / MU * (1 - (1 + MU) ** (-1 / MU)), rel=1e-3)  # half the last bin, near |x| = 1
    assert err[x.abs() < 1e-3].max() < 2e-4  # near 0: ~40x finer than the steps of 8-bit linear PCM (2 / 255)


def test_bin_widths_tile_the_interval_and_match_the_encoder():
    w = mu_law_bin_widths()
    assert w.sum().item() == pytest.approx(2.0, abs=1e-12) and (w > 0).all()
    x = torch.linspace(-1, 1, 400_001, dtype=torch.float64)
    counts = torch.bincount(mu_law_encode(x), minlength=MU + 1).double()
    assert torch.allclose(counts / 200_000, w, atol=2 / 200_000)  # the share of a uniform grid in each bin


# ---------------------------------------------------------------------------------------------------------- WaveNet
def test_density_integrates_to_one_over_two_samples():
    m = model(T=2, K=2)
    w = mu_law_bin_widths()
    for label in (0, 1):
        # p is piecewise constant on the bins, so integrals are sums over codes of p(x_k) w_k. The first sample's
        # density p(x_1) = P(k_1) / w_k1 integrates to one ...
        k = torch.stack([torch.arange(MU + 1), torch.zeros(MU + 1, dtype=torch.long)], 1)
        with torch.no_grad():
            log_p1 = torch.log_softmax(m.logits(k, torch.full((MU + 1,), label))[:, :, 0], 1).diagonal() - w.log()
        assert torch.logsumexp(log_p1 + w.log(), 0).item() == pytest.approx(0.0, abs=1e-12)
        # ... and log_prob, integrated over x_2, gives it back for every x_1 (here 16 of them).
        codes = torch.cartesian_prod(torch.arange(0, MU + 1, 17), torch.arange(MU + 1))
        with torch.no_grad():
            lp = m.log_prob(mu_law_decode(codes, dtype=torch.float64)[:, None], torch.full((len(codes),), label))
        marginal = torch.logsumexp((lp + w[codes[:, 1]].log()).view(-1, MU + 1), 1)
        assert torch.allclose(marginal, log_p1[codes[:: MU + 1, 0]], atol=1e-10, rtol=0)


def test_causal_and_receptive_field_by_perturbation():
    m = model(T=40, K=0, layers_per_cycle=3, cycles=2)  # dilations 1, 2, 4, 1, 2, 4
    R = 1 + 2 * (2**3 - 1)
    assert m.receptive_field == R == 15
    g = torch.Generator().manual_seed(0)
    k = torch.randint(0, MU + 1, (1, 40), generator=g)
    with torch.no_grad():
        base = m.logits(k)
        for j in (0, 7, 20, 39):
            k2 = k.clone()
            k2[0, j] = (k[0, j] + 100) % (MU + 1)
            changed = (m.logits(k2) - base).abs().amax(1)[0] > 0  # (T,) which positions' logits moved
            expected = torch.zeros(40, dtype=torch.bool)
            expected[j + 1 : j + 1 + R] = True  # x_j feeds the logits of x_{j+1} .. x_{j+R}, nothing else
            assert torch.equal(changed, expected), j


def test_step_with_queues_equals_the_full_pass():
    m = model(T=30, K=3)
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, MU + 1, (4, 30), generator=g)
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        full = m.logits(k, y)  # (4, 256, 30)
        queues, cond = m.net.start_queues(4, m.net.embed.weight), m.net.cond_vectors(y)
        prev = torch.full((4,), MU + 1)
        for t in range(30):
            assert torch.allclose(m.net.step(prev, t, queues, cond), full[:, :, t], atol=1e-12, rtol=0), t
            prev = k[:, t]


@pytest.mark.parametrize("opts", [{}, {"temperature": 0.7, "top_k": 20}, {"top_p": 0.9}])
def test_cached_generation_equals_naive_generation(opts):
    m = model(T=26, K=3)
    y = torch.tensor([2, 0, 1, 1, 0])
    fast = m.sample(5, labels=y, generator=torch.Generator().manual_seed(7), **opts)
    slow = m.sample_naive(5, labels=y, generator=torch.Generator().manual_seed(7), **opts)
    assert fast.shape == (5, 1, 26) and torch.equal(fast, slow)
    assert torch.equal(mu_law_decode(mu_law_encode(fast), dtype=torch.float64), fast)  # on the code centres


def test_temperature_to_zero_is_greedy_decoding():
    m = model(T=20, K=0)
    cold = [m.sample(3, generator=torch.Generator().manual_seed(i), temperature=1e-6) for i in (0, 1)]
    hot = m.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(cold[0], cold[1]) and not torch.equal(cold[0], hot)
    k = mu_law_encode(cold[0][:, 0])
    with torch.no_grad():
        assert torch.equal(m.logits(k).argmax(1), k)  # every code is the likeliest given the ones before


def test_cropped_loss_is_the_exact_mean_over_its_window():
    m = model(T=50, K=3, crop=8)
    g = torch.Generator().manual_seed(2)
    x = mu_law_decode(torch.randint(0, MU + 1, (3, 50), generator=g), dtype=torch.float64)[:, None]
    y = torch.tensor([0, 1, 2])
    torch.manual_seed(5)
    got = m.loss({"x": x, "y": y})["loss"]
    torch.manual_seed(5)
    s = int(torch.randint(0, 50 - 8 + 1, ()))
    k = mu_law_encode(x[:, 0])
    ce = torch.nn.functional.cross_entropy(m.logits(k, y), k, reduction="none")  # (3, 50) from the full pass
    assert got.item() == pytest.approx(ce[:, s : s + 8].mean().item(), abs=1e-12)


def test_learns_label_dependent_tones():
    T, K = 32, 2
    t = torch.arange(T)
    freqs = torch.tensor([2, 6])  # cycles per clip
    y = torch.arange(64) % K
    x = (0.6 * torch.sin(2 * math.pi * freqs[y, None] * t / T + torch.rand(64, 1) * 6.3))[:, None]
    torch.manual_seed(0)
    m = WaveNet(WaveNetConfig(channels=16, skip_channels=16, layers_per_cycle=4, cycles=1, conditional=True), wave_spec(T, K))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        loss = m.loss({"x": x, "y": y})
        first = first if first is not None else loss["bits_per_sample"].item()
        opt.zero_grad()
        loss["loss"].backward()
        opt.step()
    assert first > 7.5 and loss["bits_per_sample"].item() < 3.0
    m.eval()
    s = m.sample(20, labels=torch.arange(20) % K, generator=torch.Generator().manual_seed(0), temperature=0.5)
    peak = torch.fft.rfft(s[:, 0]).abs()[:, 1:].argmax(1) + 1  # dominant frequency of each sample
    assert (peak == freqs[torch.arange(20) % K]).float().mean() >= 0.8


def test_clear_errors():
    with pytest.raises(ConfigError, match=r"\(1, T\)"):
        WaveNet(WaveNetConfig(), DataSpec((1, 8, 8)))
    with pytest.raises(ConfigError, match="conditional"):
        WaveNet(WaveNetConfig(conditional=True), wave_spec(16))
    m = model(T=16, K=3)
    with pytest.raises(ValueError, match="labels"):
        m.sample(2)
    with pytest.raises(ValueError, match=r"\(B, 1, 16\)"):
        m.log_prob(torch.zeros(2, 1, 8, dtype=torch.float64), torch.zeros(2, dtype=torch.long))
