"""Gated PixelCNN: a proper distribution (brute-force normalisation), conditionals that sum to log_prob,
samples that follow log_prob, class conditioning, clear errors."""

import itertools
import math

import pytest
import torch

from genlab.errors import ConfigError
from genlab.models.autoregressive.pixelcnn import PixelCNN, PixelCNNConfig
from genlab.spec import DataSpec


def model(spec, **kw):
    torch.manual_seed(0)
    kw = {"channels": 8, "n_layers": 3, "first_kernel_size": 3, **kw}
    return PixelCNN(PixelCNNConfig(**kw), spec).double().eval()


def all_binary(shape):
    n = math.prod(shape)
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=n)), dtype=torch.float64).view(-1, *shape)


def test_binary_model_sums_to_one_over_all_images():
    spec = DataSpec((1, 2, 3), encoding="binary")
    m = model(spec)
    with torch.no_grad():
        lp = m.log_prob(all_binary(spec.shape))  # all 64 images
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("head", ["softmax", "logistic_mixture"])
def test_8bit_model_sums_to_one_over_all_pairs_of_pixels(head):
    spec = DataSpec((1, 1, 2))
    m = model(spec, head=head, n_mix=3)
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    x = torch.cartesian_prod(levels, levels).view(-1, 1, 1, 2)  # all 65536 images
    with torch.no_grad():
        lp = m.log_prob(x)
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-8)


def test_rgb_model_sums_to_one_with_channel_ordering():
    # Two levels per channel through a Bernoulli-free route: a 3-channel binary spec exercises the colour masks.
    spec = DataSpec((3, 1, 2), encoding="binary")
    m = model(spec, channels=6)
    with torch.no_grad():
        lp = m.log_prob(all_binary(spec.shape))  # 64 images of 2 RGB pixels
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-10)


def test_conditionals_sum_to_log_prob_and_do_not_see_their_own_pixel():
    spec = DataSpec((1, 4, 4))
    m = model(spec, head="softmax")
    x = torch.randint(0, 256, (3, 1, 4, 4)).double() / 127.5 - 1
    cond = m.conditionals(x)
    assert torch.allclose(cond.flatten(1).sum(1), m.log_prob(x))
    y = x.clone()
    y[:, 0, 2, 1] = -y[:, 0, 2, 1]  # change one pixel: its own and earlier conditionals' parameters stay put
    p_x, p_y = m.params(x)[0], m.params(y)[0]
    flat = (p_x - p_y).abs().amax(1).flatten(1)  # (B, H * W), raster order
    assert flat[:, : 2 * 4 + 1 + 1].max() == 0 and flat[:, 2 * 4 + 2 :].max() > 0


def test_samples_follow_the_model_distribution():
    spec = DataSpec((1, 1, 3), encoding="binary")
    m = model(spec).float()
    x = all_binary(spec.shape).float()
    with torch.no_grad():
        p = m.log_prob(x).exp()
        s = m.sample(4000, generator=torch.Generator().manual_seed(0))
    idx = ((s.flatten(1) > 0).long() * torch.tensor([4, 2, 1])).sum(1)
    freq = torch.bincount(idx, minlength=8).float() / 4000
    order = ((x.flatten(1) > 0).long() * torch.tensor([4, 2, 1])).sum(1)
    assert (freq[order] - p).abs().max() < 0.03  # ~4 standard errors at n = 4000


@pytest.mark.parametrize("temperature", [0.2, 4.0])
def test_tempered_samples_follow_the_tempered_conditionals(temperature):
    # With temperature T each sub-pixel is drawn from p(x_i | x_<i)^(1/T) / Z_i; the image probability is the
    # product of those. Z_i comes from the image with x_i flipped: the conditional at i depends on x_<i only.
    spec = DataSpec((1, 1, 3), encoding="binary")
    m = model(spec).float()
    with torch.no_grad():
        for w in m.parameters():  # sharper conditionals than at initialisation, so that tempering matters
            w.mul_(2.5)
    x = all_binary(spec.shape).float()
    with torch.no_grad():
        c = m.conditionals(x).flatten(1) / temperature  # (8, 3)
        code = ((x.flatten(1) > 0).long() * torch.tensor([4, 2, 1])).sum(1)
        where = torch.empty(8, dtype=torch.long)
        where[code] = torch.arange(8)
        q = torch.zeros(8)
        for a in range(8):
            for i, bit in enumerate([4, 2, 1]):
                flip = c[where[code[a] ^ bit], i]
                q[a] += c[a, i] - torch.logaddexp(c[a, i], flip)
        s = m.sample(4000, generator=torch.Generator().manual_seed(0), temperature=temperature)
    freq = torch.bincount(((s.flatten(1) > 0).long() * torch.tensor([4, 2, 1])).sum(1), minlength=8).float() / 4000
    assert (freq[code] - q.exp()).abs().max() < 0.03
    p = m.log_prob(x).exp()
    assert (q.exp() - p).abs().sum() > 0.1  # the check can tell a tempered sampler from the plain one


def test_tempered_level_sampler_is_the_mixture_itself_at_t1_and_greedy_near_t0():
    from genlab.models.autoregressive.decoding import level_logits, sample_levels

    m = model(DataSpec((1, 2, 2)), n_mix=3)
    x = torch.rand(2, 1, 2, 2, dtype=torch.float64) * 2 - 1
    at = tuple(p[..., 0:1, 1:2, 0:1] for p in m.params(x))  # one sub-pixel of two images
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    lp = level_logits(m.head, at, levels)  # (2, 256)
    assert torch.allclose(torch.logsumexp(lp, 1), torch.zeros(2, dtype=torch.float64), atol=1e-10)
    g = torch.Generator().manual_seed(0)
    n = 20000
    rep = tuple(p.repeat(n // 2, *[1] * (p.dim() - 1)) for p in at)  # rows alternate image 0, image 1
    ours = sample_levels(m.head, rep, levels, g).view(n // 2, 2)
    native = m.head.sample(rep, g).view(n // 2, 2)
    for k in range(2):  # same mean and spread as the head's own sampler, and as the exact level probabilities
        mean = (lp[k].exp() * levels).sum()
        assert abs(ours[:, k].mean() - mean) < 0.03 and abs(native[:, k].mean() - mean) < 0.03
        assert abs(ours[:, k].std() - native[:, k].std()) < 0.03
    greedy = [m.sample(3, generator=torch.Generator().manual_seed(s), temperature=1e-4) for s in (1, 2)]
    assert torch.equal(greedy[0], greedy[1])
    assert not torch.equal(*[m.sample(3, generator=torch.Generator().manual_seed(s)) for s in (1, 2)])
    with pytest.raises(ConfigError, match="temperature"):
        m.sample(1, temperature=0.0)
    with pytest.raises(ConfigError, match="cfg"):
        m.sample(1, cfg=2.0)


def test_class_conditioning_changes_the_distribution_and_needs_labels():
    spec = DataSpec((1, 3, 3), num_classes=3, encoding="binary")
    m = model(spec, conditional=True, cond_dim=4)
    x = all_binary((1, 3, 3))[:5]
    a, b = m.log_prob(x, torch.zeros(5, dtype=torch.long)), m.log_prob(x, torch.ones(5, dtype=torch.long))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="class-conditional"):
        m.log_prob(x)
    s = m.sample(4, labels=torch.tensor([0, 1, 2, 0]), generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 1, 3, 3)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="dequantize=false"):
        PixelCNN(PixelCNNConfig(), DataSpec((1, 8, 8), dequantized=True))
    with pytest.raises(ConfigError, match="binarize"):
        PixelCNN(PixelCNNConfig(head="bernoulli"), DataSpec((1, 8, 8)))
    with pytest.raises(ConfigError, match="multiple of the 3"):
        PixelCNN(PixelCNNConfig(channels=8), DataSpec((3, 8, 8)))
    with pytest.raises(ConfigError, match="odd"):
        PixelCNN(PixelCNNConfig(kernel_size=4), DataSpec((1, 8, 8)))
    with pytest.raises(ConfigError, match="images"):
        PixelCNN(PixelCNNConfig(), DataSpec((2,), encoding="continuous"))
    m = model(DataSpec((1, 4, 4), encoding="binary"))
    with pytest.raises(ValueError, match="shape"):
        m.log_prob(torch.zeros(2, 1, 5, 5, dtype=torch.float64))


@pytest.mark.parametrize("shape, kw", [((1, 9, 9), {"n_layers": 2, "first_kernel_size": 3}), ((3, 7, 8), {"channels": 6, "n_mix": 2})])
def test_receptive_field_window_gives_the_full_image_output(shape, kw):
    m = model(DataSpec(shape), **kw)
    up, side = m.net.receptive_field
    x = torch.randn(2, *shape, dtype=torch.float64)
    full = m.net(x)
    H, W = shape[1:]
    for i, j in [(H - 1, W // 2), (H // 2, 0), (H - 1, W - 1), (up + 1, side + 1)]:
        r0, c0, c1 = max(0, i - up), max(0, j - side), min(W, j + side + 1)
        window = m.net(x[:, :, r0 : i + 1, c0:c1])[:, :, -1, j - c0]
        assert torch.allclose(window, full[:, :, i, j], atol=1e-12)
    # one row or column less than the field is not enough: the bound is tight for the vertical stack
    i, j = H - 1, W // 2
    short = m.net(x[:, :, i - up + 1 : i + 1])[:, :, -1, j]
    assert not torch.allclose(short, full[:, :, i, j], atol=1e-12)
