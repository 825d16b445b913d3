"""Shared by the autoregressive models: class labels, and drawing from categorical distributions reproducibly
(temperature, top-k, top-p (nucleus) and the Gumbel-max trick)."""

from __future__ import annotations

import torch

from genlab.errors import ConfigError
from genlab.models.base import SampleOption
from genlab.noise import rand

DECODING_OPTIONS = (
    SampleOption("temperature", float, "sampling temperature (> 0)"),
    SampleOption("top_k", int, "keep the k most likely tokens"),
    SampleOption("top_p", float, "nucleus sampling: keep the most likely tokens holding this mass"),
)


def check_decoding(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ConfigError for decoding options outside their ranges."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")


def start_tokens(model, y: torch.Tensor | None, n: int) -> torch.Tensor:
    """The start token of each of n sequences: its class for a class-conditional model, else 0 (n,)."""
    y = model.class_labels(y, n)
    return torch.zeros(n, dtype=torch.long, device=model.device) if y is None else y


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits (autocast) -> float32 for softmax and sampling; float32/float64 stay as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Logits over the last dimension divided by the temperature, with tokens outside the top k and outside the
    smallest set whose probability reaches top_p (Holtzman et al. 2020) set to -inf."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens before it already reach top_p; the most likely one always stays.
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of softmax(logits) over the last dimension, by the Gumbel-max trick:
    argmax(l + g), g = -log(-log u). Uses exactly logits.numel() uniforms from `generator`."""
    u = rand(tuple(logits.shape), logits, generator).clamp(1e-20, 1 - 1e-7)
    return (logits - torch.log(-torch.log(u))).argmax(dim=-1)


def level_logits(head, params: tuple[torch.Tensor, ...], levels: torch.Tensor) -> torch.Tensor:
    """log p(x = v | params) for every value v in `levels`, (n, L): the head's own distribution over its discrete
    support (256 levels or {-1, 1}) at one sub-pixel, whose params are (n, ..., 1, 1, 1)."""
    n, L = params[0].shape[0], levels.numel()
    rep = tuple(p.unsqueeze(0).expand(L, *p.shape).reshape(L * n, *p.shape[1:]) for p in params)
    x = levels.to(params[0].dtype).view(L, 1).expand(L, n).reshape(L * n, 1, 1, 1)
    return head.log_prob_elementwise(x, rep).view(L, n).T


def sample_levels(
    head,
    params: tuple[torch.Tensor, ...],
    levels: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """One value per row from p(v)^(1/T) / Z over the head's discrete support, with top-k / top-p applied: the
    exact tempered distribution of a discretised head (a logistic mixture included), not a rescaled logistic."""
    logits = filter_logits(at_least_float32(level_logits(head, params, levels)), temperature, top_k, top_p)
    return levels.to(params[0].dtype)[sample_categorical(logits, generator)]
