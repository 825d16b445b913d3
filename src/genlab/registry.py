"""Name -> class registries for models, datasets, samplers, feature networks and modalities.

Classes register themselves explicitly with a decorator; the packages that hold them are
imported on first look-up, so a new model is a new file under `genlab/models/` and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from genlab.errors import unknown

_MODELS: dict[str, tuple[type, type]] = {}
_DATASETS: dict[str, Callable[..., Any]] = {}
_SAMPLERS: dict[str, Callable[..., Any]] = {}
_FEATURES: dict[str, Callable[..., Any]] = {}
_FEATURE_DATASETS: dict[str, tuple[str, ...]] = {}
_MODALITIES: dict[str, type] = {}

_PACKAGES = {
    "models": "genlab.models",
    "datasets": "genlab.data",
    "samplers": "genlab.samplers",
    "features": "genlab.metrics",
    "modalities": "genlab.modalities",
}
_loaded: set[str] = set()


def _discover(kind: str) -> None:
    """Import every module of the package that holds `kind`, so their decorators run."""
    if kind in _loaded:
        return
    _loaded.add(kind)
    pkg = importlib.import_module(_PACKAGES[kind])
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if not info.name.rsplit(".", 1)[-1].startswith("_"):
            importlib.import_module(info.name)


def register_model(name: str, config: type) -> Callable[[type], type]:
    """Class decorator: `@register_model("vae", VAEConfig)` above `class VAE(GenerativeModel)`."""

    def deco(cls: type) -> type:
        if name in _MODELS and _MODELS[name][1] is not cls:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = (config, cls)
        return cls

    return deco


def register_dataset(name: str) -> Callable[[Callable], Callable]:
    """Decorator for `build(cfg: DataConfig, split: str) -> TensorDataset`."""

    def deco(fn: Callable) -> Callable:
        _DATASETS[name] = fn
        return fn

    return deco


def register_sampler(name: str) -> Callable[[Callable], Callable]:
    def deco(fn: Callable) -> Callable:
        _SAMPLERS[name] = fn
        return fn

    return deco


def register_features(name: str, datasets: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator for a function returning a feature network (`.features(x)`, `.classify(x)`).

    `datasets` are the datasets the network was trained on: it is their default feature network, and their
    reference statistics are taken over the whole split and cached (`metrics.feature_nets.reference_stats`)."""

    def deco(fn: Callable) -> Callable:
        _FEATURES[name] = fn
        _FEATURE_DATASETS[name] = tuple(datasets)
        return fn

    return deco


def register_modality(name: str) -> Callable[[type], type]:
    """Class decorator: `@register_modality("image")` above a `genlab.modalities.Modality` subclass."""

    def deco(cls: type) -> type:
        if name in _MODALITIES and _MODALITIES[name] is not cls:
            raise ValueError(f"modality name {name!r} is registered twice")
        _MODALITIES[name] = cls
        cls.name = name
        return cls

    return deco


def model(name: str) -> tuple[type, type]:
    """(ConfigClass, ModelClass) for a model name; a clear error naming the closest ones."""
    _discover("models")
    if name not in _MODELS:
        raise unknown("model", name, _MODELS)
    return _MODELS[name]


def model_config_class(name: str) -> type:
    return model(name)[0]


def dataset(name: str) -> Callable[..., Any]:
    _discover("datasets")
    if name not in _DATASETS:
        raise unknown("dataset", name, _DATASETS)
    return _DATASETS[name]


def sampler(name: str) -> Callable[..., Any]:
    _discover("samplers")
    if name not in _SAMPLERS:
        raise unknown("sampler", name, _SAMPLERS)
    return _SAMPLERS[name]


def features(name: str) -> Callable[..., Any]:
    _discover("features")
    if name not in _FEATURES:
        raise unknown("feature network", name, _FEATURES)
    return _FEATURES[name]


def features_for_dataset(dataset: str) -> str | None:
    """The feature network trained on `dataset` (registered with `datasets=`), or None."""
    _discover("features")
    return next((name for name, ds in _FEATURE_DATASETS.items() if dataset in ds and name in _FEATURES), None)


def modality(name: str) -> Any:
    """An instance of the modality registered as `name` (what a DataSpec's `modality` names)."""
    _discover("modalities")
    if name not in _MODALITIES:
        raise unknown("modality", name, _MODALITIES)
    return _MODALITIES[name]()


def list_modalities() -> list[str]:
    _discover("modalities")
    return sorted(_MODALITIES)


def list_models() -> list[str]:
    _discover("models")
    return sorted(_MODELS)


def list_datasets() -> list[str]:
    _discover("datasets")
    return sorted(_DATASETS)


def list_samplers() -> list[str]:
    _discover("samplers")
    return sorted(_SAMPLERS)


def list_features() -> list[str]:
    _discover("features")
    return sorted(_FEATURES)
