"""Gaussian diffusion models (DDPM to EDM) in one configurable class; samplers live in genlab.samplers."""

from genlab.models.diffusion.diffusion import DiffusionConfig, DiffusionModel

__all__ = ["DiffusionConfig", "DiffusionModel"]
