"""A decoder-only Transformer (pre-norm, as GPT-2, Radford et al. 2019) over token sequences: causal
scaled-dot-product attention, learned or rotary positions (Su et al. 2021, RoFormer) and a key/value cache
that makes each sampling step cost one token's work."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Positions = Literal["learned", "rope"]


class KVCache:
    """Keys and values of the tokens seen so far, per layer: (B, heads, T, head_dim) each."""

    def __init__(self, n_layers: int):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
        self.length = 0


def rotate(x: torch.Tensor, pos: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotary position embedding: pairs (x_i, x_{i + d/2}) of a (B, h, T, d) tensor rotated by pos * theta_i,
    theta_i = base^(-2i/d), so q . k depends on positions only through their difference (Su et al. 2021, eq. 34)."""
    half = x.shape[-1] // 2
    theta = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angle = pos.to(torch.float32)[:, None] * theta[None]  # (T, d/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos, x[..., 2 * half :]], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, rope: bool, dropout: float = 0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        self.n_heads, self.rope, self.dropout = n_heads, rope, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        if self.rope:
            q, k = rotate(q, pos), rotate(k, pos)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        S = k.shape[2]
        drop = self.dropout if self.training else 0.0
        if S == T:  # no cache: the usual causal mask
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        else:  # T new queries after S - T cached keys: query t sees keys <= S - T + t
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        return self.proj(y.transpose(1, 2).reshape(B, T, D)), (k, v)


class Block(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)) (pre-norm)."""

    def __init__(self, d_model: int, n_heads: int, rope: bool, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, rope, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, past=None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.ln1(x), pos, past)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv


class CausalTransformer(nn.Module):
    """p(x_t | x_<t, s) for sequences x of at most `context` tokens from a vocabulary of `vocab_size`, where the
    start token s (one of `n_starts`, e.g. a class) takes position 0 and x_t's prediction sits at position t.

    `logits(x, s)` scores a whole sequence in one pass (teacher forcing); `step` extends a KVCache by one token.
    """

    def __init__(
        self,
        vocab_size: int,
        context: int,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        positions: Positions = "learned",
        n_starts: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        if positions not in ("learned", "rope"):
            raise ValueError(f"positions must be 'learned' or 'rope', got {positions!r}")
        self.vocab_size, self.context = vocab_size, context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.start = nn.Embedding(n_starts, d_model)
        self.pos = nn.Embedding(context, d_model) if positions == "learned" else None
        self.blocks = nn.ModuleList(Block(d_model, n_heads, positions == "rope", dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

    def _check_length(self, end: int) -> None:
        if end > self.context:
            raise ValueError(
                f"a sequence of {end} tokens is longer than the model's context of {self.context}; "
                "shorten it or train a model with a larger model.context"
            )

    def _check_tokens(self, x: torch.Tensor) -> None:
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got values in [{int(x.min())}, {int(x.max())}]")

    def forward_embeddings(self, h: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Input embeddings (B, T, d) at positions cache.length.. -> logits (B, T, vocab); extends `cache`."""
        start = cache.length if cache is not None else 0
        T = h.shape[1]
        self._check_length(start + T)
        pos = torch.arange(start, start + T, device=h.device)
        if self.pos is not None:
            h = h + self.pos(pos)
        for i, block in enumerate(self.blocks):
            h, kv = block(h, pos, cache.layers[i] if cache is not None else None)
            if cache is not None:
                cache.layers[i] = kv
        if cache is not None:
            cache.length += T
        return self.lm_head(self.ln_f(h))

    def start_embedding(self, s: torch.Tensor) -> torch.Tensor:
        """The input at position 0, (B, d): the embedding of start ids s (B,), or s itself when it is already an input
        vector (B, d), e.g. a start token plus a projected condition (the property-conditional token Transformer)."""
        return self.start(s) if s.dim() == 1 else s

    def embed(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """[s, x_0, ..., x_{L-2}] embedded: (B, L, d) for a target sequence x of length L (B, L)."""
        self._check_tokens(x)
        return torch.cat([self.start_embedding(s)[:, None], self.tok(x[:, :-1])], dim=1)

    def logits(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens, (B,) start ids -> (B, L, vocab): row t holds the logits of p(x_t | x_<t, s)."""
        self._check_length(x.shape[1])
        return self.forward_embeddings(self.embed(x, s))

    def prefill(self, x: torch.Tensor, s: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, vocab) of p(x_P | x_<P, s) for given tokens x (B, P), in one pass that fills the empty `cache`
        with s and x, so that `step(x_P, ...)` continues from there."""
        self._check_tokens(x)
        return self.forward_embeddings(torch.cat([self.start_embedding(s)[:, None], self.tok(x)], 1), cache)[:, -1]

    def step(self, prev: torch.Tensor | None, s: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, vocab) of the next token given the cache; `prev` is the token drawn last (None at first)."""
        if prev is None:
            h = self.start_embedding(s)[:, None]
        else:
            self._check_tokens(prev)
            h = self.tok(prev)[:, None]
        return self.forward_embeddings(h, cache)[:, -1]
