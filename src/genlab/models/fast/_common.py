"""What the few-step models share: a teacher run loaded once for training (never saved with the student) and a
one-time copy of a run's network weights into a model (reflow fine-tunes the flow it straightens)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from genlab.errors import ConfigError
from genlab.models.loading import load_run


class TeacherSlot:
    """A trained run's model, loaded on first use and kept outside the student's modules (so outside its state dict,
    its parameters and the trainer's EMA copy)."""

    def __init__(self, run_dir: str, key: str):
        self.run_dir, self.key, self._model = run_dir, key, None

    def get(self, device: torch.device) -> nn.Module:
        if self._model is None:
            self._model = load_run(self.run_dir).requires_grad_(False)
        return self._model.to(device)


def init_once(model: nn.Module, source: nn.Module, done: torch.Tensor, key: str) -> None:
    """Copy `source.net`'s weights into `model.net` the first time (the `done` buffer, saved with the model, is 0), so a
    resumed run keeps its own weights. The networks must have the same shapes."""
    if bool(done):
        return
    src, dst = source.net.state_dict(), model.net.state_dict()
    bad = [k for k in dst if k not in src or src[k].shape != dst[k].shape]
    if bad:
        raise ConfigError(
            f"model.{key}: the network of that run differs from this model's ({len(bad)} tensors, e.g. {bad[0]!r}); "
            "give this model the same network keys (channels, blocks, attn_resolutions, width, depth, conditional)"
        )
    with torch.no_grad():
        model.net.load_state_dict(src)
    done.fill_(1)


def drop_labels(y: torch.Tensor | None, p: float, null: int, training: bool) -> torch.Tensor | None:
    """Label dropout for classifier-free guidance (Ho & Salimans 2022): each label -> the null label with probability p."""
    if y is None or not training or p == 0:
        return y
    drop = torch.rand(y.shape, device=y.device) < p
    return torch.where(drop, torch.full_like(y, null), y)


def guided(
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor],
    x: torch.Tensor,
    s: torch.Tensor,
    y: torch.Tensor | None,
    w: float,
    null: int,
) -> torch.Tensor:
    """Classifier-free guidance on an output linear in the score (x0 or v): out = out_u + w (out_c - out_u), both halves in
    one batched call of `fn(x, s, labels)` (w = 1: conditional only; w = 0: unconditional only)."""
    if y is None or w == 1.0:
        return fn(x, s, y)
    null_y = torch.full_like(y, null)
    if w == 0.0:
        return fn(x, s, null_y)
    out_c, out_u = fn(torch.cat([x, x]), torch.cat([s, s]), torch.cat([y, null_y])).chunk(2)
    return out_u + w * (out_c - out_u)


def bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) broadcasting against `like`."""
    return v.view(-1, *([1] * (like.dim() - 1)))
