"""The 1-D networks of genlab.nn.audio inside the families that use them: DiffWave in the diffusion model under every
registered sampler (and in flow matching), WaveGAN in the GAN with phase shuffle; shapes, receptive fields, and that
`auto` picks them for waveforms (C, T)."""

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import registry
from genlab.errors import ConfigError
from genlab.models.diffusion.diffusion import DiffusionConfig, DiffusionModel
from genlab.models.fast.flow_matching import FlowMatchingConfig, FlowMatchingModel
from genlab.models.gan.gan import GAN, GANConfig
from genlab.nn.audio import DiffWaveNet, WaveGANDiscriminator, WaveGANGenerator, fold, phase_shuffle, unfold
from genlab.spec import DataSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def wave_spec(T, K=0):
    return DataSpec((1, T), num_classes=K, encoding="continuous", modality="waveform")


def tones(n, T, K):
    """Sines whose frequency depends on the label: (n, 1, T) in [-1, 1] and labels (n,)."""
    y = torch.arange(n) % K
    t = torch.arange(T)
    return (0.5 * torch.sin(2 * torch.pi * (y[:, None] + 1) * t / T))[:, None], y


# ------------------------------------------------------------------------------------------------------ phase shuffle
def test_phase_shuffle_shifts_with_reflection():
    x = torch.arange(6.0).view(1, 1, 6).repeat(3, 2, 1)  # 3 examples, 2 channels: 0 1 2 3 4 5
    out = phase_shuffle(x, 2, shifts=torch.tensor([2, -2, 0]))
    assert out.shape == x.shape
    assert out[0, 0].tolist() == [2, 1, 0, 1, 2, 3]  # moved right by 2: x[-2], x[-1] reflect to x[2], x[1]
    assert out[1, 0].tolist() == [2, 3, 4, 5, 4, 3]  # moved left by 2: x[6], x[7] reflect to x[4], x[3]
    assert torch.equal(out[2], x[2]) and torch.equal(out[:, 0], out[:, 1])  # shift 0; every channel alike


def test_random_phase_shuffle_draws_every_shift_in_the_radius():
    x = torch.randn(400, 3, 20)
    out = phase_shuffle(x, 1, generator=torch.Generator().manual_seed(0))
    seen = set()
    for b in range(len(x)):
        hits = [n for n in (-1, 0, 1) if torch.equal(out[b], phase_shuffle(x[b : b + 1], 1, shifts=torch.tensor([n]))[0])]
        assert len(hits) == 1
        seen.add(hits[0])
    assert seen == {-1, 0, 1}
    assert torch.equal(phase_shuffle(x, 0), x)


# ------------------------------------------------------------------------------------------------------ WaveGAN
@pytest.mark.parametrize("T", [256, 250])  # 250 is no multiple of 4^2: G makes 256 samples and crops
def test_wavegan_shapes(T):
    G = WaveGANGenerator(8, 1, T, channels=(4, 8), num_classes=3)
    D = WaveGANDiscriminator(1, T, channels=(4, 8), num_classes=3, shuffle=2)
    z, y = torch.randn(5, 8), torch.arange(5) % 3
    x = G(z, y)
    assert x.shape == (5, 1, T) and x.abs().max() < 1
    assert [m.kernel_size[0] for m in G.ups] == [25, 25] and [m.stride[0] for m in D.convs] == [4, 4]
    D.eval()
    assert D(x, y).shape == (5,) and torch.equal(D(x, y), D(x, y))  # no shuffle in eval mode
    D.train()
    torch.manual_seed(0)
    assert not torch.equal(D(x, y), D(x, y))  # phase shuffle in training


def test_gan_picks_wavegan_for_waveforms_and_trains_both_phases():
    spec = wave_spec(256, 3)
    torch.manual_seed(0)
    gan = GAN(GANConfig(latent_dim=8, g_channels=(4, 8), d_channels=(4, 8), conditional=True, loss="wgan-gp"), spec)
    assert gan.net_kind == "wavegan" and isinstance(gan.G, WaveGANGenerator)
    x, y = tones(6, 256, 3)
    for phase in ("d", "g"):
        out = gan.loss({"x": x, "y": y}, phase=phase)
        assert torch.isfinite(out["loss"])
    s = gan.sample(4, labels=torch.arange(4) % 3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 256)
    with pytest.raises(ConfigError, match="waveforms"):
        GAN(GANConfig(net="wavegan"), DataSpec((1, 8, 8)))
    with pytest.raises(ConfigError, match="needs images"):
        GAN(GANConfig(net="dcgan"), spec)


# ------------------------------------------------------------------------------------------------------ DiffWave
def test_fold_round_trip():
    x = torch.randn(2, 3, 12)
    f = fold(x, 4)
    assert f.shape == (2, 12, 3) and torch.equal(f[:, 1], x[:, 0, 1::4]) and torch.equal(unfold(f, 4), x)


@pytest.mark.parametrize("patch", [1, 2])
def test_diffwave_receptive_field_by_perturbation(patch):
    torch.manual_seed(0)
    net = DiffWaveNet(1, channels=8, layers=4, dilation_cycle=2, patch=patch).double()  # dilations 1, 2, 1, 2
    assert net.receptive_field == patch * (1 + 2 * 6)
    T, t = 64, 30
    x = torch.randn(1, 1, T, dtype=torch.float64, requires_grad=True)
    net(x, torch.full((1,), 5.0, dtype=torch.float64))[0, 0, t].backward()
    seen = (x.grad[0, 0] != 0).nonzero().flatten()
    assert seen.max() - seen.min() + 1 == net.receptive_field  # bidirectional: a window around t, of that width
    assert seen.min() <= t <= seen.max()


def diffusion(**kw):
    torch.manual_seed(0)
    cfg = {
        "timesteps": 50,
        "steps": 4,
        "wave_channels": 8,
        "wave_layers": 3,
        "dilation_cycle": 3,
        "wave_patch": 2,
        "conditional": True,
        **kw,
    }
    return DiffusionModel(DiffusionConfig(**cfg), wave_spec(32, 3))


def test_diffwave_is_auto_for_waveforms_and_gradients_reach_every_parameter():
    m = diffusion(formulation="edm")
    assert isinstance(m.net, DiffWaveNet)
    x, y = tones(6, 32, 3)
    m.loss({"x": x, "y": y})["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    with pytest.raises(ConfigError, match="wave_patch"):
        diffusion(wave_patch=5)


@pytest.mark.parametrize("sampler", registry.list_samplers())
@pytest.mark.parametrize("formulation", ["vp", "edm"])
def test_every_sampler_runs_with_the_diffwave_denoiser(sampler, formulation):
    m = diffusion(formulation=formulation).eval()
    labels = torch.arange(4) % 3
    a = m.sample(4, labels=labels, sampler=sampler, steps=3, guidance=2.0, generator=torch.Generator().manual_seed(0))
    b = m.sample(4, labels=labels, sampler=sampler, steps=3, guidance=2.0, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, 1, 32) and torch.isfinite(a).all() and torch.equal(a, b)
    assert torch.isfinite(m.nll_bound(*tones(2, 32, 3))).all() if sampler == "ddpm" else True


def test_flow_matching_uses_the_diffwave_denoiser():
    torch.manual_seed(0)
    m = FlowMatchingModel(FlowMatchingConfig(wave_channels=8, wave_layers=2, dilation_cycle=2, conditional=True, steps=3), wave_spec(32, 3))
    assert isinstance(m.net, DiffWaveNet)
    x, y = tones(4, 32, 3)
    assert torch.isfinite(m.loss({"x": x, "y": y})["loss"])
    assert m.eval().sample(3, labels=torch.arange(3), generator=torch.Generator().manual_seed(0)).shape == (3, 1, 32)
