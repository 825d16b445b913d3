"""The denoiser networks: shapes at 28/32/64 px in grayscale and RGB, attention only where asked, conditioning inputs
that change the output, the sinusoidal embedding, and the FLOP cost of the default Fashion-MNIST UNet."""

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from genlab.nn.embeddings import sinusoidal_embedding
from genlab.nn.unet import Attention, MLPDenoiser, UNet


@pytest.mark.parametrize("channels, size, attn", [(1, 28, 7), (3, 32, 8), (3, 64, 16), (1, 14, 7)])
def test_shapes_and_attention_placement(channels, size, attn):
    net = UNet(channels, channels, channels=(8, 16, 16), blocks=1, attn_resolutions=(attn,), heads=2, size=(size, size))
    out = net(torch.randn(2, channels, size, size), torch.rand(2) * 999)
    assert out.shape == (2, channels, size, size)
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.append(o.shape[-1])) for m in net.modules() if isinstance(m, Attention)]
    net(torch.randn(1, channels, size, size), torch.zeros(1))
    for h in hooks:
        h.remove()
    assert seen and set(seen) == {attn}


def test_conditioning_inputs_change_the_output():
    torch.manual_seed(0)
    net = UNet(1, 1, channels=(8, 8), attn_resolutions=(), size=(8, 8), num_classes=3, cond_channels=1)
    x, t, cond = torch.randn(2, 1, 8, 8), torch.tensor([5.0, 5.0]), torch.randn(2, 1, 8, 8)
    base = net(x, t, torch.tensor([0, 0]), cond)
    assert not torch.allclose(base, net(x, t, torch.tensor([1, 1]), cond))
    assert not torch.allclose(base, net(x, t, None, cond))  # the null label
    assert not torch.allclose(base, net(x, t + 100, torch.tensor([0, 0]), cond))
    assert not torch.allclose(base, net(x, t, torch.tensor([0, 0]), -cond))


def test_mlp_denoiser():
    net = MLPDenoiser(2, width=32, depth=2, num_classes=4)
    out = net(torch.randn(5, 2), torch.rand(5), torch.arange(5) % 4)
    assert out.shape == (5, 2)


def test_sinusoidal_embedding():
    e = sinusoidal_embedding(torch.tensor([0.0, 1.0]), 8)
    assert torch.allclose(e[0], torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0]))
    freqs = torch.exp(-math.log(10000.0) * torch.arange(4) / 4)
    assert torch.allclose(e[1], torch.cat([torch.cos(freqs), torch.sin(freqs)]))
    assert e.dtype == torch.float32 and sinusoidal_embedding(torch.zeros(1, dtype=torch.float64), 4).dtype == torch.float64


def test_default_fmnist_unet_cost():
    """The preset's UNet (32/64/64 at 28 -> 14 -> 7, one block per level, attention at 7x7) costs about 0.61 GFLOP per
    training image, forward + backward: well under diffusers' 1.46 GFLOP for UNet2DModel(32, 64, 64) at 32x32."""
    net = UNet(1, 1, channels=(32, 64, 64), blocks=1, attn_resolutions=(7,), size=(28, 28))
    assert 0.8e6 < sum(p.numel() for p in net.parameters()) < 0.9e6
    with FlopCounterMode(display=False) as fc:
        net(torch.randn(2, 1, 28, 28), torch.rand(2)).square().mean().backward()
    gflop = fc.get_total_flops() / 2 / 1e9
    assert 0.55 < gflop < 0.65
