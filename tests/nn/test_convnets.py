"""Conv encoder/decoder and MLP: shapes at 28, 32 and 64 pixels, gray and RGB, and clear errors for sizes that do not halve."""

from __future__ import annotations

import pytest
import torch

from genlab.nn.convnets import ConvDecoder, ConvEncoder, ResBlock, lowest_resolution
from genlab.nn.mlp import MLP


@pytest.mark.parametrize("size, channels", [(28, (8, 16)), (32, (8, 16, 16)), (64, (4, 8, 8, 8))])
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
def test_encoder_decoder_shapes(size, channels, c, upsample):
    enc = ConvEncoder(c, (size, size), channels, out_dim=6, blocks=1)
    dec = ConvDecoder(5, 2 * c, (size, size), channels, blocks=1, upsample=upsample)
    assert enc(torch.zeros(2, c, size, size)).shape == (2, 6)
    assert dec(torch.zeros(2, 5)).shape == (2, 2 * c, size, size)


def test_28_halves_to_7_without_padding():
    assert lowest_resolution((28, 28), 2) == (7, 7)
    assert lowest_resolution((32, 48), 3) == (4, 6)
    dec = ConvDecoder(4, 1, (28, 28), (8, 16))
    assert dec.low == (16, 7, 7)


@pytest.mark.parametrize("size, levels", [(28, 3), (30, 2), (64, 7)])
def test_sizes_that_do_not_halve_raise(size, levels):
    with pytest.raises(ValueError, match="cannot be halved"):
        ConvEncoder(1, (size, size), (8,) * levels, out_dim=4)
    with pytest.raises(ValueError, match="cannot be halved"):
        ConvDecoder(4, 1, (size, size), (8,) * levels)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="at least one level"):
        ConvEncoder(1, (28, 28), (), out_dim=4)
    with pytest.raises(ValueError, match="upsample"):
        ConvDecoder(4, 1, (28, 28), (8,), upsample="bilinear")
    with pytest.raises(ValueError, match="activation"):
        MLP(2, 2, (4,), activation="tanhh")


def test_encoder_takes_a_conditioning_vector():
    enc = ConvEncoder(1, (8, 8), (4,), out_dim=3, cond_dim=5, norm=False, activation="leaky_relu")
    x = torch.randn(2, 1, 8, 8)
    a, b = enc(x, torch.zeros(2, 5)), enc(x, torch.ones(2, 5))
    assert a.shape == (2, 3) and not torch.allclose(a, b)


@pytest.mark.parametrize("norm", [True, False])
def test_resblock_keeps_shape_and_passes_gradients(norm):
    block = ResBlock(12, "gelu", norm=norm)  # 12 channels: GroupNorm with 4 groups of 3
    x = torch.randn(2, 12, 5, 5)
    y = block(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in block.parameters())


def test_mlp_widths_and_linear_case():
    net = MLP(7, 3, (16, 8), activation="relu", layer_norm=True)
    assert net(torch.zeros(4, 7)).shape == (4, 3)
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [16, 8, 3]
    linear = MLP(7, 3)
    assert len(linear) == 1 and isinstance(linear[0], torch.nn.Linear)
