"""Generative models, one family per sub-package; each registers itself with genlab.registry."""

from __future__ import annotations

from genlab import registry
from genlab.config import ModelConfig, RunConfig
from genlab.models.base import GenerativeModel, Phase, RunContext, SampleOption
from genlab.spec import DataSpec


def build_model(config: ModelConfig, spec: DataSpec, run: RunConfig | None = None, steps: int = 0) -> GenerativeModel:
    """The registered model named by `config.name`, built for data of `spec`, knowing its run config `run`."""
    _, cls = registry.model(config.name)
    model = cls(config, spec)
    model.run = RunContext(run, steps)
    return model


__all__ = ["GenerativeModel", "Phase", "RunContext", "SampleOption", "build_model"]
