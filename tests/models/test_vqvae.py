"""VQ-VAE: straight-through gradients, EMA codebook = cluster means, dead-code restarts, the uniform-prior bound."""

import math

import pytest
import torch

from genlab.errors import ConfigError
from genlab.models.vae.vqvae import VQVAE, VectorQuantizer, VQVAEConfig
from genlab.spec import DataSpec


def clusters(n, g):
    """(n, 1, 1, 1) vectors around -1 and +1 (D = 1, one position per example)."""
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (sign + 0.1 * torch.randn(n, generator=g)).view(n, 1, 1, 1)


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_unchanged():
    q = VectorQuantizer(4, 3).eval()  # no EMA step, so the codebook stays what the forward pass used
    z_e = torch.randn(2, 3, 2, 2, requires_grad=True)
    z_st, codes, commitment, _ = q(z_e)
    assert torch.allclose(z_st, q.lookup(codes))  # forward: the code vectors
    w = torch.randn_like(z_st)
    (g,) = torch.autograd.grad((z_st * w).sum(), z_e)
    assert torch.equal(g, w)  # backward: identity
    (g,) = torch.autograd.grad(commitment, z_e)
    assert torch.allclose(g, 2 * (z_e - q.lookup(codes)).detach() / z_e.numel())  # ||z_e - sg(z_q)||^2 pulls z_e only


def test_ema_codebook_converges_to_the_cluster_means():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    q = VectorQuantizer(2, 1, ema=True, decay=0.9).train()
    for _ in range(200):
        q(clusters(256, g))
    means = sorted(q.codebook.flatten().tolist())
    assert means == pytest.approx([-1.0, 1.0], abs=0.03)


def test_dead_codes_restart_at_encoder_outputs():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    q = VectorQuantizer(3, 1, ema=True, decay=0.9, dead_threshold=0.1).train()
    q.initialised.fill_(True)
    q.codebook.copy_(torch.tensor([[-1.0], [1.0], [100.0]]))  # code 2 is far from every vector: never chosen
    q.embed_sum.copy_(q.codebook)
    for _ in range(60):
        q(clusters(256, g))
    assert q.codebook.abs().max() < 2  # code 2 was restarted among the data
    _, codes, _, _ = q(clusters(1024, g))
    assert len(codes.unique()) == 3  # and it is in use


def test_codebook_loss_trains_the_codebook_without_ema():
    q = VectorQuantizer(4, 2, ema=False).train()
    _, _, _, codebook_loss = q(torch.randn(3, 2, 2, 2))
    codebook_loss.backward()
    assert q.codebook.grad is not None and q.codebook.grad.abs().sum() > 0


def test_bound_is_reconstruction_plus_uniform_prior_and_encode_never_moves_the_codebook():
    torch.manual_seed(0)
    m = VQVAE(VQVAEConfig(channels=[8], codebook_size=8, code_dim=4), DataSpec((1, 8, 8)))
    x = torch.randint(0, 256, (4, 1, 8, 8)).float() / 127.5 - 1
    out = m.train().loss({"x": x})
    assert set(out) >= {"loss", "recon", "commitment", "perplexity", "nll_bound"} and 1 <= out["perplexity"] <= 8
    before = m.quantizer.codebook.clone()
    codes = m.encode(x)
    assert torch.equal(before, m.quantizer.codebook) and codes.shape == (4, 4, 4)
    m.eval()
    assert torch.allclose(m.nll_bound(x), m.recon_nll(x) + 16 * math.log(8))
    assert m.decode(codes).shape == (4, 1, 8, 8)


def test_bad_configs():
    with pytest.raises(ConfigError, match="dequantize=false"):
        VQVAE(VQVAEConfig(), DataSpec((1, 28, 28), dequantized=True))
    with pytest.raises(ConfigError, match="cannot be halved"):
        VQVAE(VQVAEConfig(channels=[8, 8, 8]), DataSpec((1, 28, 28)))
    with pytest.raises(ConfigError, match="decoder"):
        VQVAE(VQVAEConfig(decoder="bernoulli"), DataSpec((1, 28, 28)))
