"""Token sequences that end at their first <eos> (token 0), as the recurrent models of token data see them: per-position
log-likelihoods from next-token logits, and the batched step-by-step sampler that carries a recurrent state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from genlab.models.autoregressive.decoding import at_least_float32, check_decoding, filter_logits, sample_categorical


def alive(t: torch.Tensor) -> torch.Tensor:
    """(B, L) bool: the positions up to and including each sequence's first <eos>, the tokens a likelihood counts."""
    eos = (t == 0).long()
    return eos.cumsum(1) - eos == 0


def longest(t: torch.Tensor) -> int:
    """The number of positions a batch needs: its longest sequence with its <eos>."""
    return int(alive(t).sum(1).max())


def teacher_inputs(start: torch.Tensor, t: torch.Tensor, steps: int) -> torch.Tensor:
    """The inputs of the first `steps` predictions (B, steps): the start token, then x_0 .. x_{steps-2}."""
    return torch.cat([start[:, None], t[:, : steps - 1]], dim=1)


def sequence_log_probs(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log p(x_s | x_<s) for every position (B, L) from next-token logits (B, T, V) of the first T positions: 0 after a
    sequence's first <eos> and beyond T. The last position (when T = L) can only be <eos>, so the per-sequence sums
    are a distribution over strings of fewer than L tokens."""
    B, L = t.shape
    T = logits.shape[1]
    logits = at_least_float32(logits)
    if T == L:
        last = torch.where(torch.arange(logits.shape[-1], device=t.device) == 0, 0.0, -torch.inf)
        logits = torch.cat([logits[:, :-1], last.expand_as(logits[:, -1:])], dim=1)
    lp = torch.log_softmax(logits, dim=-1).gather(-1, t[:, :T, None])[..., 0]
    lp = torch.where(alive(t)[:, :T], lp, torch.zeros_like(lp))
    return torch.cat([lp, lp.new_zeros(B, L - T)], dim=1)


@torch.no_grad()
def sample_sequences(
    step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
    start: torch.Tensor,
    length: int,
    state: Any = None,
    *,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """n sequences (n, length) drawn one token per step: `step(previous tokens (n,), state) -> (logits (n, V), state)`,
    starting from the `start` tokens. Positions after a sequence's <eos> hold <eos>, the last position is always
    <eos>, and the loop stops once every sequence has ended."""
    check_decoding(temperature, top_k, top_p)
    n = len(start)
    x = torch.zeros(n, length, dtype=torch.long, device=start.device)
    done = torch.zeros(n, dtype=torch.bool, device=start.device)
    tok = start
    for s in range(length - 1):
        logits, state = step(tok, state)
        tok = torch.where(
            done, torch.zeros_like(tok), sample_categorical(filter_logits(at_least_float32(logits), temperature, top_k, top_p), generator)
        )
        x[:, s] = tok
        done |= tok == 0
        if bool(done.all()):
            break
    return x
