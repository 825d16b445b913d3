"""Discriminator rejection sampling (Azadi et al. 2019): filter a generator's samples with a critic's estimate of the
density ratio p_data / p_G.

A critic R trained with the logistic loss on real against generated samples has, at its optimum, the logit
R(x) = log p_data(x) / p_G(x). Rejection sampling from p_G with acceptance probability exp(R(x) - M), M = max R, then
draws exactly from p_data. DRS writes that probability as sigmoid(F(x)) with

    F(x) = (R(x) - M) - log(1 - exp(R(x) - M - eps))        (so sigmoid(F) = exp(R - M) when eps = 0)

and shifts it by gamma, accepting with sigmoid(F(x) - gamma): gamma = 0 is exact rejection sampling (often a tiny
acceptance rate: M comes from the best samples), a gamma set to the q-th quantile of F over each batch of proposals
accepts a steady share of them, trading exactness for speed. M is the largest logit seen so far, starting from a
burn-in batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genlab.errors import ConfigError, GenlabError
from genlab.noise import rand

EPS = 1e-6
MAX_PROPOSALS_PER_SAMPLE = 200


def check_quantile(q: float) -> float:
    """gamma's quantile must lie in [0, 1): 0 = exact rejection sampling (gamma = 0)."""
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not (0 <= q < 1):
        raise ConfigError(f"drs_quantile: expected a value in [0, 1) (0 = exact rejection sampling), got {q!r}")
    return float(q)


def acceptance(logits: torch.Tensor, M: float, quantile: float) -> torch.Tensor:
    """Acceptance probabilities sigmoid(F - gamma) of proposals with critic logits (N,), M >= max(logits); gamma = 0 when
    `quantile` = 0 (then the probability is exp(logit - M) up to eps), else the `quantile`-th quantile of F over them."""
    d = (logits.double() - M).clamp(max=0.0)
    F = d - torch.log(-torch.expm1(d - EPS))
    gamma = torch.quantile(F, quantile) if quantile > 0 else F.new_zeros(())
    return torch.sigmoid(F - gamma)


@torch.no_grad()
def rejection_sample(
    propose: Callable[[int], tuple[torch.Tensor, torch.Tensor | None]],
    score: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    n: int,
    *,
    quantile: float,
    chunk: int = 10_000,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
    """n accepted samples, their labels (or None) and {"acceptance", "proposals", "M"}.

    `propose(k)` draws k samples and their labels (or None); `score(x, y)` gives the critic's logits (k,). Proposals come
    in batches of `chunk`; the first batch is also the burn-in that sets M. The uniforms come from `generator` (after
    the proposals of each batch), so a seeded call repeats itself."""
    quantile = check_quantile(quantile)
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    M, got, proposed, accepted = -float("inf"), 0, 0, 0
    limit = MAX_PROPOSALS_PER_SAMPLE * n + chunk
    while got < n:
        if proposed >= limit:
            raise GenlabError(
                f"discriminator rejection sampling accepted {got} of {n} samples after {proposed} proposals; raise drs_quantile "
                f"(now {quantile:g}; 0 is exact rejection sampling, whose acceptance can be tiny) or sample with drs=False"
            )
        x, y = propose(chunk)
        logits = score(x, y).flatten().double()
        M = max(M, float(logits.max()))
        p = acceptance(logits, M, quantile)
        ok = (rand((len(p),), p, generator) < p).nonzero().flatten()
        accepted += len(ok)
        keep = ok[: n - got]
        xs.append(x[keep.to(x.device)])
        if y is not None:
            ys.append(y[keep.to(y.device)])
        got += len(keep)
        proposed += len(x)
    stats = {"acceptance": accepted / proposed, "proposals": float(proposed), "M": M}
    return torch.cat(xs), (torch.cat(ys) if ys else None), stats
