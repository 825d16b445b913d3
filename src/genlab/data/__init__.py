"""Datasets: 2D toys with exact densities, MNIST-style IDX files, folders of images."""

from genlab.data.base import ArrayDataset, BatchTransform, Loader, iterate, load_dataset

__all__ = ["ArrayDataset", "BatchTransform", "Loader", "iterate", "load_dataset"]
