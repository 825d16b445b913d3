"""The GenerativeModel contract every family implements; the trainer and the harness use only this."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from genlab.config import ModelConfig, RunConfig
from genlab.errors import ConfigError, did_you_mean
from genlab.spec import DataSpec

Batch = dict[str, torch.Tensor]


@dataclass
class Phase:
    """One optimiser of a model: its name, parameters, steps per training step and lr multiplier.

    A GAN declares `[Phase("d", D.parameters(), steps=n_critic, lr_scale=2.0), Phase("g", G.parameters())]`;
    the trainer runs the phases in order, each with its own AdamW, and passes `phase=name` to `loss`.
    A two-stage model starts its second stage later: `Phase("prior", ..., start_fraction=0.5)`.
    """

    name: str
    params: Iterable[nn.Parameter]
    steps: int = 1
    lr_scale: float = 1.0
    betas: tuple[float, float] | None = None
    start_fraction: float = 0.0  # the phase runs once this fraction of the budget (steps or time) is spent


@dataclass
class RunContext:
    """What a model knows of the run that made it: the whole run config (None for a model built by hand) and the
    optimiser steps it has been trained for. `genlab.train` and `genlab.load` set it the same way."""

    config: RunConfig | None = None
    steps: int = 0


@dataclass(frozen=True)
class SampleOption:
    """One keyword argument a model's `sample()` takes: its name, type and help (the CLI makes a flag of it)."""

    name: str
    type: type = float
    help: str = ""


class GenerativeModel(nn.Module):
    """Base class of every genlab model.

    Subclasses are built as `Model(config, spec)` and implement:
      - `loss(batch, phase=None) -> {"loss": scalar, ...}`: "loss" is back-propagated, the rest logged;
      - `sample(n, *, labels=None, generator=None, **kw) -> Tensor` in data space (images in [-1, 1]);
      - `log_prob(x, y=None)` (exact likelihood) or `nll_bound(x, y=None, k=...)` (an upper bound
        on the NLL), both in nats per example on the model's input scale.
    `likelihood` says which of the two exists ("exact", "bound" or "none"); `sample_options()` lists the keyword
    arguments `sample` takes, the one list the CLI and `check_sample_kwargs` read. `run` is the RunContext.
    """

    family: ClassVar[str] = ""
    likelihood: ClassVar[Literal["exact", "bound", "none"]] = "none"
    bound_name: ClassVar[str] = ""
    importance_weighted: ClassVar[bool] = False  # nll_bound(k>1) tightens the bound (IWAE)
    deterministic_sampling: ClassVar[bool] = False  # samples do not depend on the generator (a predictor given its context)

    def __init__(self, config: ModelConfig, spec: DataSpec):
        super().__init__()
        self.config = config
        self.spec = spec
        self.run = RunContext()

    @classmethod
    def sample_options(cls) -> tuple[SampleOption, ...]:
        """The keyword arguments `sample()` takes beyond n, labels and generator; none by default."""
        return ()

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.config, "conditional", False)) and self.spec.num_classes > 0

    def phases(self) -> list[Phase]:
        """The optimisers this model needs; one over all parameters unless overridden."""
        return [Phase("main", self.parameters())]

    def loss(self, batch: Batch, phase: str | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no exact likelihood (likelihood={self.likelihood!r})")

    def nll_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no likelihood bound (likelihood={self.likelihood!r})")

    def nll(self, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1) -> torch.Tensor:
        """NLL in nats per example: exact where exact, else the bound with `k` samples."""
        if self.likelihood == "exact":
            return -self.log_prob(x, y)
        if self.likelihood == "bound":
            return self.nll_bound(x, y, k=k)
        raise NotImplementedError(f"{type(self).__name__} has no likelihood")

    def class_labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The labels of a class-conditional model as a (n,) LongTensor on its device (required), None for an
        unconditional one (labels ignored)."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"this {type(self).__name__} is class-conditional (model.conditional=true): pass labels y of shape ({n},)")
        if y.shape != (n,):
            raise ValueError(f"expected {n} labels of shape ({n},), got shape {tuple(y.shape)}")
        return y.to(self.device).long()

    def check_sample_labels(self, labels: torch.Tensor | None) -> None:
        """sample(): labels for a class-conditional model and none for an unconditional one."""
        if labels is not None and not self.conditional:
            raise ValueError(f"labels were given, but this {type(self).__name__} is not class-conditional (model.conditional=false)")
        if labels is None and self.conditional:
            raise ValueError(f"this {type(self).__name__} is class-conditional: pass labels= of shape (n,), e.g. model.sample_labels(n)")

    def sample_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Balanced labels 0, 1, ..., K-1, 0, ... for class-conditional sample grids."""
        if not self.conditional:
            return None
        return torch.arange(n, device=self.device) % self.spec.num_classes

    def diagnose(self, row: dict[str, float]) -> str | None:
        """Look at one metrics.jsonl row (means since the last one); return a warning when training
        is going wrong (e.g. a GAN whose discriminator wins outright). The trainer logs it."""
        return None

    def figures(self, batch: Batch) -> dict[str, tuple[torch.Tensor, int]]:
        """Extra pictures of a trained model on test examples: name -> (images N x C x H x W in [-1, 1],
        images per row). Latent families show reconstructions and interpolations; none by default."""
        return {}

    def contract_sample_kwargs(self, n: int) -> dict:
        """Keyword arguments `sample(n, ...)` needs in the contract test (a predictor's context); none by default."""
        return {}

    @classmethod
    def contract_cases(cls) -> list[tuple[dict, DataSpec]]:
        """Small (config overrides, data spec) pairs the contract test builds this model with."""
        raise NotImplementedError(f"{cls.__name__} must list contract_cases() so the contract test can build small instances")

    def check_sample_kwargs(self, kwargs: dict) -> None:
        """Sampling options the model does not declare in `sample_options()` are an error naming the ones it takes."""
        allowed = sorted(o.name for o in self.sample_options())
        for k in kwargs:
            if k not in allowed:
                who = type(self).__name__
                raise ConfigError(f"{who} sampling has no option {k!r}.{did_you_mean(k, allowed) or ' It takes none.'}")

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
