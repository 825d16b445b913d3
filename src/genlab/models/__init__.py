"""Generative models, one family per sub-package; each registers itself with genlab.registry."""

from __future__ import annotations

from genlab.config import ModelConfig
from genlab.models.base import GenerativeModel, Phase
from genlab.spec import DataSpec


def build_model(config: ModelConfig, spec: DataSpec) -> GenerativeModel:
    """The registered model named by `config.name`, built for data of `spec`."""
    from genlab import registry

    _, cls = registry.model(config.name)
    return cls(config, spec)


__all__ = ["GenerativeModel", "Phase", "build_model"]
