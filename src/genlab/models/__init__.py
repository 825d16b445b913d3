"""Generative models, one family per sub-package; each registers itself with genlab.registry."""

from genlab.models.base import GenerativeModel, Phase

__all__ = ["GenerativeModel", "Phase"]
