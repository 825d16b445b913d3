"""genlab: deep generative models — GANs, VAEs, diffusion, normalizing flows and autoregressive
models — behind one contract, one trainer, one CLI and one evaluation harness."""

from genlab.api import evaluate, info, list_datasets, list_models, list_samplers, load, optimize, sample, train
from genlab.config import RunConfig, build_run_config
from genlab.errors import CheckpointError, ConfigError, DataError, GenlabError, TrainingError

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GenlabError",
    "RunConfig",
    "TrainingError",
    "build_run_config",
    "evaluate",
    "info",
    "list_datasets",
    "list_models",
    "list_samplers",
    "load",
    "optimize",
    "sample",
    "train",
]
