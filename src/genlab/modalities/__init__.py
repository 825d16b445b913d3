"""Modalities: images, 2D points, token sequences (and what registers next). Each owns its sample-quality metrics,
its sample writer and its preview; `modality_of(spec)` finds the one a dataset names."""

from genlab.modalities.base import Modality, modality_of

__all__ = ["Modality", "modality_of"]
