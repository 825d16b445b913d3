"""Causal Transformer: exact causality with and without the KV cache, cached sampling = uncached sampling,
a proper distribution over variable-length sequences, convergence to a Markov chain's entropy, clear errors."""

import itertools
import math

import pytest
import torch

from genlab import checkpoint as ckpt
from genlab.errors import CheckpointError, ConfigError
from genlab.models.autoregressive.decoding import filter_logits
from genlab.models.autoregressive.transformer import Transformer, TransformerConfig, generate
from genlab.nn.transformer import CausalTransformer, KVCache
from genlab.spec import DataSpec

VOCAB = ("<eos>", "a", "b", "c")


def net(positions, **kw):
    torch.manual_seed(0)
    return CausalTransformer(5, 8, d_model=16, n_layers=2, n_heads=2, positions=positions, **kw).double().eval()


def model(spec=DataSpec((6,), encoding="tokens", vocab=VOCAB), **kw):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(**{"d_model": 16, "n_layers": 2, "n_heads": 2, **kw}), spec).double().eval()


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_output_t_has_zero_gradient_wrt_inputs_after_t_without_cache(positions):
    f = net(positions)
    h = torch.randn(1, 8, 16, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda e: f.forward_embeddings(e)[0], h, vectorize=True)  # (T, V, 1, T, d)
    dep = J.abs().sum((1, 2, 4))  # (T_out, T_in)
    assert torch.equal(dep.triu(1), torch.zeros_like(dep))  # exactly zero above the diagonal
    assert (dep[torch.ones(8, 8, dtype=torch.bool).tril()] > 0).all()  # and every earlier position is seen


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_kv_cache_gives_the_same_logits_and_the_same_causality(positions):
    f = net(positions)
    h = torch.randn(1, 8, 16, dtype=torch.float64)

    def cached(e):
        cache = KVCache(len(f.blocks))
        return torch.cat([f.forward_embeddings(e[:, t : t + 1], cache) for t in range(e.shape[1])], dim=1)[0]

    assert torch.allclose(cached(h), f.forward_embeddings(h)[0], atol=1e-12)
    # A prefix of 3 tokens at once, then single tokens: the explicit-mask branch agrees too.
    cache = KVCache(len(f.blocks))
    mixed = torch.cat([f.forward_embeddings(h[:, :3], cache)] + [f.forward_embeddings(h[:, t : t + 1], cache) for t in range(3, 8)], 1)
    assert torch.allclose(mixed, f.forward_embeddings(h), atol=1e-12)
    J = torch.autograd.functional.jacobian(cached, h)
    dep = J.abs().sum((1, 2, 4))
    assert torch.equal(dep.triu(1), torch.zeros_like(dep))


def test_changing_a_token_leaves_earlier_conditionals_unchanged():
    m = model()
    x = torch.tensor([[1, 2, 3, 1, 2, 0]])
    for j in range(5):
        y = x.clone()
        y[0, j] = 1 + (x[0, j] % 3)
        a, b = m.net.logits(x, torch.zeros(1, dtype=torch.long)), m.net.logits(y, torch.zeros(1, dtype=torch.long))
        assert torch.equal(a[:, : j + 1], b[:, : j + 1])  # logits at t <= j never see x_j
        assert not torch.allclose(a[:, j + 1 :], b[:, j + 1 :])


@pytest.mark.parametrize("kw", [{}, {"temperature": 0.7, "top_k": 3}, {"top_p": 0.8}, {"temperature": 1.5, "top_k": 4, "top_p": 0.9}])
@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_cached_sampling_gives_the_same_tokens_as_uncached(kw, positions):
    f = net(positions)
    s = torch.zeros(16, dtype=torch.long)
    a = generate(f, 16, 8, s, generator=torch.Generator().manual_seed(3), cache=True, **kw)
    b = generate(f, 16, 8, s, generator=torch.Generator().manual_seed(3), cache=False, **kw)
    assert torch.equal(a, b) and len(a.unique()) > 1


def test_log_prob_is_a_distribution_over_variable_length_sequences():
    spec = DataSpec((3,), encoding="tokens", vocab=VOCAB)
    m = model(spec)
    # Every string of length 0..2 over {a, b, c}, then <eos> padding: 1 + 3 + 9 = 13 sequences.
    seqs = [list(s) + [0] * (3 - len(s)) for n in range(3) for s in itertools.product([1, 2, 3], repeat=n)]
    lp = m.log_prob(torch.tensor(seqs))
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-10)
    assert torch.allclose(m.conditionals(torch.tensor(seqs)).sum(1), lp)
    # Padding after <eos> is not scored: whatever follows it, the probability is the same.
    assert torch.equal(m.log_prob(torch.tensor([[1, 0, 0]])), m.log_prob(torch.tensor([[1, 0, 2]])))


def test_pixels_as_tokens_form_a_distribution():
    spec = DataSpec((1, 2, 3), encoding="binary", num_classes=2)
    m = model(spec, conditional=True, positions="rope")
    x = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=6)), dtype=torch.float64).view(-1, 1, 2, 3)
    y = torch.ones(len(x), dtype=torch.long)
    assert torch.logsumexp(m.log_prob(x, y), 0).item() == pytest.approx(0.0, abs=1e-10)
    s = m.sample(5, labels=torch.tensor([0, 1, 0, 1, 0]), generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 1, 2, 3) and set(s.unique().tolist()) <= {-1.0, 1.0}


def test_sampled_token_sequences_end_with_eos_padding():
    m = model()
    t = m.sample(50, generator=torch.Generator().manual_seed(0))
    for row in t.tolist():
        if 0 in row:
            assert all(v == 0 for v in row[row.index(0) :])


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all() and torch.isfinite(filter_logits(logits, top_k=2)[0, :2]).all()
    kept = torch.isfinite(filter_logits(logits, top_p=0.75)[0])
    assert kept.tolist() == [True, True, False, False]  # 0.5 < 0.75 <= 0.5 + 0.3
    assert torch.isfinite(filter_logits(logits, top_p=0.01)[0]).tolist() == [True, False, False, False]
    assert torch.allclose(filter_logits(logits, temperature=2.0), logits / 2)


def markov_chain(n, length, g):
    """n chains of `length` states (ids 1..3) from the stationary start, then <eos>; and their true log-probability."""
    P = torch.tensor([[0.8, 0.15, 0.05], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    pi = torch.linalg.eig(P.T).eigenvectors[:, 0].real
    pi = pi / pi.sum()
    x = torch.zeros(n, length, dtype=torch.long)
    x[:, 0] = torch.multinomial(pi, n, replacement=True, generator=g)
    for t in range(1, length):
        x[:, t] = torch.multinomial(P[x[:, t - 1]], 1, generator=g)[:, 0]
    logp = torch.log(pi)[x[:, 0]] + torch.log(P[x[:, :-1], x[:, 1:]]).sum(1)
    return torch.cat([x + 1, torch.zeros(n, 1, dtype=torch.long)], 1), logp


def test_trained_on_a_markov_chain_the_nll_approaches_the_true_entropy():
    torch.manual_seed(0)
    L = 8
    spec = DataSpec((L + 1,), encoding="tokens", vocab=VOCAB)
    m = Transformer(TransformerConfig(d_model=32, n_layers=1, n_heads=2), spec)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        x, _ = markov_chain(64, L, g)
        loss = -m.log_prob(x).mean() / L
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, true_logp = markov_chain(4000, L, torch.Generator().manual_seed(1))
    with torch.no_grad():
        nll = -m.log_prob(x).mean().item()
    entropy = -true_logp.mean().item()  # H(x_1) + (L - 1) H(rate): about 0.85 nats per token
    assert entropy - 0.05 < nll < entropy + 0.02 * L  # within 0.02 nats per token of the truth, never far below it


def test_bad_input_is_a_clear_error(tmp_path):
    m = model()
    with pytest.raises(ValueError, match="longer than the model's context of 6"):
        m.net.logits(torch.ones(1, 7, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="longer than the model's context"):
        m.log_prob_text(["abcabc"])
    with pytest.raises(ValueError, match="token ids must lie in"):
        m.log_prob(torch.tensor([[1, 9, 0, 0, 0, 0]]))
    with pytest.raises(ConfigError, match="model.context=4 is shorter"):
        Transformer(TransformerConfig(context=4), DataSpec((6,), encoding="tokens", vocab=VOCAB))
    with pytest.raises(ConfigError, match="dequantize=false"):
        Transformer(TransformerConfig(), DataSpec((1, 4, 4), dequantized=True))
    with pytest.raises(ConfigError, match="top_k"):
        m.sample(2, top_k=0)
    with pytest.raises(ConfigError, match="no option 'top_q'"):
        m.sample(2, top_q=0.5)
    # Weights trained on one vocabulary do not load into a model whose tokenizer has another of the same size.
    ckpt.save_weights(tmp_path / "w.safetensors", m, {"model": "transformer", "step": 0})
    other = model(DataSpec((6,), encoding="tokens", vocab=("<eos>", "x", "y", "z")))
    with pytest.raises(CheckpointError, match="another vocabulary"):
        ckpt.load_weights(tmp_path / "w.safetensors", other)
    assert m.log_prob_text(["ab", "c"]).shape == (2,)
    assert math.isfinite(m.log_prob_text(["abc"]).item())
