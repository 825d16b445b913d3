"""Masked convolutions and the Gated PixelCNN: exact causality for masks A and B over colour groups, no blind spot."""

import pytest
import torch

from genlab.nn.masked import CausalityError, CentreMaskedConv2d, GatedPixelCNN, assert_causal, channel_mask


def jacobian_out_in(net, shape, out_channels, n_inputs=4):
    """|d out[o, i, j] / d x[c, r, s]| summed over a few random inputs (ReLUs silence different units for
    different inputs; a structural zero is zero for all of them), float64: (O, H, W, C, H, W)."""
    g = torch.Generator().manual_seed(0)
    total = 0
    for _ in range(n_inputs):
        x = torch.randn(1, *shape, dtype=torch.float64, generator=g)
        total = total + torch.autograd.functional.jacobian(lambda t: net(t)[0], x, vectorize=True)[:, :, :, 0].abs()  # (O, H, W, C, H, W)
    return total


def later_mask(O, C, H, W, groups):
    """True where input (c, r, s) is at or after output (o, i, j) in raster-then-colour order."""
    go = (torch.arange(O) % groups).view(O, 1, 1, 1, 1, 1)
    gi = (torch.arange(C) % groups).view(1, 1, 1, C, 1, 1)
    i = torch.arange(H).view(1, H, 1, 1, 1, 1)
    j = torch.arange(W).view(1, 1, W, 1, 1, 1)
    r = torch.arange(H).view(1, 1, 1, 1, H, 1)
    s = torch.arange(W).view(1, 1, 1, 1, 1, W)
    pos_out, pos_in = i * W + j, r * W + s
    return (pos_in > pos_out) | ((pos_in == pos_out) & (gi >= go))


def test_channel_masks():
    a = channel_mask(3, 3, 3, "A")
    b = channel_mask(3, 3, 3, "B")
    assert torch.equal(a, torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0]]).float())
    assert torch.equal(b, torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).float())
    assert channel_mask(4, 2, 1, "A").sum() == 0 and channel_mask(4, 2, 1, "B").sum() == 8
    with pytest.raises(ValueError, match="mask_type"):
        channel_mask(3, 3, 3, "C")


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("groups", [1, 3])
def test_centre_masked_conv_sees_only_the_allowed_groups_of_the_current_pixel(mask_type, groups):
    torch.manual_seed(0)
    conv = CentreMaskedConv2d(6, 6, (1, 1), groups, mask_type).double()
    J = jacobian_out_in(conv, (6, 3, 3), 6)  # (6, 3, 3, 6, 3, 3)
    for o in range(6):
        for c in range(6):
            allowed = (o % groups > c % groups) if mask_type == "A" else (o % groups >= c % groups)
            assert (J[o, 1, 1, c, 1, 1] > 0) == allowed


@pytest.mark.parametrize("groups, first_kernel", [(1, 3), (1, 5), (3, 3)])
def test_gated_pixelcnn_is_exactly_causal_and_has_no_blind_spot(groups, first_kernel):
    torch.manual_seed(0)
    C, H, W = groups, 5, 5
    net = GatedPixelCNN(C, 2 * C, channels=12, n_layers=5, kernel_size=3, first_kernel_size=first_kernel, groups=groups).double()
    J = jacobian_out_in(net, (C, H, W), 2 * C)
    later = later_mask(2 * C, C, H, W, groups)
    assert J[later].max() == 0  # exactly zero: output i never sees input j >= i
    # No blind spot: the last pixel's outputs depend on every earlier pixel, including those up and to the right.
    earlier = ~later[:, H - 1, W - 1]  # (O, C, H, W)
    assert (J[:, H - 1, W - 1][earlier] > 0).all()
    assert (J[:, 2, 2, :, 1, 4] > 0).any()  # up-right of the centre: PixelCNN's classic blind spot


def test_mask_b_in_the_first_layer_leaks_and_assert_causal_says_so():
    torch.manual_seed(0)
    good = GatedPixelCNN(3, 6, channels=6, n_layers=2, groups=3)
    assert_causal(good, (3, 6, 6), groups=3)
    leaky = GatedPixelCNN(1, 1, channels=4, n_layers=2, first_mask="B")
    with pytest.raises(CausalityError, match="not autoregressive"):
        assert_causal(leaky, (1, 6, 6), groups=1)
    unmasked = torch.nn.Conv2d(1, 1, 3, padding=1)
    with pytest.raises(CausalityError, match="depends on input channel 0 at pixel"):
        assert_causal(unmasked, (1, 6, 6), groups=1)
