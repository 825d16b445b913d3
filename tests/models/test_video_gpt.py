"""The VideoGPT-style token model: the prior is causal over the clip's tokens (Jacobian of its logits), continuation
through the KV cache equals continuation without it, the bound is the per-frame reconstruction plus the prior by the
chain rule, given frames are kept, and a small model learns constant motion: it predicts a moving bar far better
than copying the last given frame."""

import math

import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab.config import build
from genlab.errors import ConfigError
from genlab.models import build_model
from genlab.models.autoregressive.transformer import generate
from genlab.models.video.tokens import VideoGPTConfig
from genlab.nn.transformer import KVCache
from genlab.spec import DataSpec

TINY = {
    "name": "video_gpt",
    "channels": [8],
    "blocks": 0,
    "codebook_size": 8,
    "code_dim": 4,
    "prior_d_model": 16,
    "prior_layers": 2,
    "prior_heads": 2,
}


def _model(spec: DataSpec, **kw):
    torch.manual_seed(0)
    return build_model(build(VideoGPTConfig, {**TINY, **kw}, "model"), spec).eval()


def test_prior_logits_at_t_see_only_tokens_before_t():
    model = _model(DataSpec((3, 1, 4, 4), modality="video"))  # 3 frames of 2 x 2 codes: 12 tokens
    net = model.prior_net
    tokens = torch.randint(0, 8, (1, 12), generator=torch.Generator().manual_seed(0))
    s = torch.zeros(1, dtype=torch.long)
    emb = net.embed(tokens, s)
    J = torch.autograd.functional.jacobian(lambda e: net.forward_embeddings(e)[0], emb)  # (12, K, 1, 12, d)
    reach = J.abs().sum((1, 2, 4))  # output position t <- input position u
    assert torch.all(reach.triu(1) == 0)  # no output sees a later input
    assert torch.all(reach.diagonal() > 0)  # input u (token u - 1, or the start) reaches output u
    # a token changes the predictions after it only
    bumped = tokens.clone()
    bumped[0, 5] = (bumped[0, 5] + 1) % 8
    a, b = net.logits(tokens, s), net.logits(bumped, s)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-6


def test_continuation_with_and_without_the_cache_agree():
    model = _model(DataSpec((3, 1, 4, 4), num_classes=2, modality="video"), conditional=True)
    net = model.prior_net
    prefix = torch.randint(0, 8, (4, 5), generator=torch.Generator().manual_seed(1))
    s = torch.tensor([0, 1, 0, 1])
    a = generate(net, 4, 12, s, generator=torch.Generator().manual_seed(2), prefix=prefix)
    b = generate(net, 4, 12, s, generator=torch.Generator().manual_seed(2), prefix=prefix, cache=False)
    assert torch.equal(a, b) and torch.equal(a[:, :5], prefix)
    # the prefilled cache gives the teacher-forced logits of the next token
    kv = KVCache(len(net.blocks))
    torch.testing.assert_close(net.prefill(a[:, :5], s, kv), net.logits(a, s)[:, 5])
    with pytest.raises(ValueError, match="prefix"):
        generate(net, 3, 12, s[:3], prefix=prefix)


def test_bound_is_reconstruction_plus_prior_by_the_chain_rule():
    model = _model(DataSpec((3, 1, 4, 4), modality="video"))
    x = torch.randint(0, 256, (2, 3, 1, 4, 4)).float() / 127.5 - 1
    tokens = model.encode(x)
    assert tokens.shape == (2, 12)
    recon = sum(model.vqvae.recon_nll(x[:, t]) for t in range(3))
    # log p_prior by the chain rule, one token at a time through the cache
    kv, s = KVCache(len(model.prior_net.blocks)), torch.zeros(2, dtype=torch.long)
    logp = torch.zeros(2)
    for t in range(12):
        logits = model.prior_net.step(tokens[:, t - 1] if t else None, s, kv)
        logp += torch.log_softmax(logits, -1).gather(1, tokens[:, t : t + 1])[:, 0]
    torch.testing.assert_close(model.nll_bound(x), recon - logp)
    assert model.nll_bound(x).mean() < 3 * 16 * math.log(256) + 12 * math.log(8) + 100  # finite and of the right size


def _moving_bars(n: int, g: torch.Generator) -> torch.Tensor:
    """Clips (n, 6, 1, 8, 8): a vertical bar two pixels wide moving two pixels per frame to the right (wrapping)."""
    start = 2 * torch.randint(0, 4, (n,), generator=g)
    x = -torch.ones(n, 6, 1, 8, 8)
    for t in range(6):
        for dc in range(2):
            x[torch.arange(n), t, 0, :, (start + 2 * t + dc) % 8] = 1.0
    return x


def test_learns_constant_motion_and_keeps_the_given_frames():
    torch.manual_seed(0)
    spec = DataSpec((6, 1, 8, 8), encoding="binary", modality="video")
    model = build_model(build(VideoGPTConfig, {**TINY, "codebook_size": 16, "prior_d_model": 32}, "model"), spec)
    g = torch.Generator().manual_seed(1)
    for phase, steps, lr in (("vqvae", 120, 3e-3), ("prior", 150, 3e-3)):
        params = model.vqvae.parameters() if phase == "vqvae" else model.prior_net.parameters()
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            loss = model.loss({"x": _moving_bars(16, g)}, phase=phase)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    test = _moving_bars(32, torch.Generator().manual_seed(2))
    pred = model.sample(32, context=test[:, :3], top_k=1, generator=torch.Generator().manual_seed(3))
    assert pred.shape == test.shape
    assert torch.equal(pred[:, :3], test[:, :3])  # the given frames are returned as they were
    mse = (pred[:, 3:] - test[:, 3:]).pow(2).mean()
    copy_last = (test[:, 2:3] - test[:, 3:]).pow(2).mean()
    assert mse < 0.1 * copy_last, (float(mse), float(copy_last))


def test_errors():
    with pytest.raises(ConfigError, match="clips"):
        _model(DataSpec((1, 8, 8)))
    with pytest.raises(ConfigError, match="context_frames=3"):
        _model(DataSpec((3, 1, 4, 4), modality="video"), context_frames=3)
    with pytest.raises(ConfigError, match="conditional"):
        _model(DataSpec((3, 1, 4, 4), modality="video"), conditional=True)
    model = _model(DataSpec((3, 1, 4, 4), modality="video"))
    with pytest.raises(ConfigError, match="context"):
        model.sample(2, context=torch.zeros(2, 2, 1, 5, 5))
    with pytest.raises(ValueError, match="expected clips"):
        model.encode(torch.zeros(2, 4, 1, 4, 4))
    wide = _model(DataSpec((3, 1, 4, 4), modality="video"), codebook_size=64)
    assert "codebook uses about 2 of 64" in wide.diagnose({"perplexity": 2.0})
    assert wide.diagnose({"perplexity": 20.0}) is None
