"""Feature networks for the sample-quality metrics: genlab's shipped Fashion-MNIST / MNIST classifiers,
torch-fidelity's InceptionV3 for natural images, or any user nn.Module; cached reference statistics."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genlab import checkpoint as ckpt
from genlab import registry
from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.transforms import crop_from, from_unit_range, to_unit_range
from genlab.errors import CheckpointError, GenlabError
from genlab.metrics.fid import gaussian_stats
from genlab.registry import register_features

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
TRAIN_SCRIPT = "scripts/train_feature_net.py"

Images = torch.Tensor | np.ndarray


class FeatureNet(nn.Module):
    """A small CNN classifier for 1 x 28 x 28 images in [-1, 1]; its penultimate layer is the feature space.

    conv(32) conv(32) pool conv(64) conv(64) pool (3x3 convs, BatchNorm, ReLU) -> linear(feature_dim),
    BatchNorm, ReLU = `features(x)` -> dropout -> linear(num_classes) = `classify(x)`. 32 x 32 inputs
    (data.pad_to=32) are centre-cropped to 28 x 28.

    >>> net = FeatureNet().eval()
    >>> net.features(torch.zeros(2, 1, 32, 32)).shape, net.classify(torch.zeros(2, 1, 28, 28)).shape
    (torch.Size([2, 128]), torch.Size([2, 10]))
    """

    image_shape = (1, 28, 28)

    def __init__(
        self, num_classes: int = 10, widths: tuple[int, int, int, int] = (32, 32, 64, 64), feature_dim: int = 128, dropout: float = 0.3
    ):
        super().__init__()
        c1, c2, c3, c4 = widths

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*conv(1, c1), *conv(c1, c2), nn.MaxPool2d(2), *conv(c2, c3), *conv(c3, c4), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c4 * 7 * 7, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.weights_sha256: str | None = None  # set when loaded from a shipped, hash-checked file

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.image_shape
        if x.ndim != 4 or x.shape[1] != c or tuple(x.shape[2:]) not in ((h, w), (32, 32)):
            expected = f"N x {c} x {h} x {w} (or N x {c} x 32 x 32, centre-cropped)"
            raise ValueError(f"FeatureNet expects images {expected} in [-1, 1]; got shape {tuple(x.shape)}")
        return crop_from(x, h, w).float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, float32 (N, feature_dim)."""
        return self.head(self.body(self._prepare(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.classifier(self.dropout(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x)


class ModuleFeatures(nn.Module):
    """Any module as a feature network: its forward output, flattened, is the feature vector."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).flatten(1)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return _logits(self.module, x)


class InceptionFeatures(nn.Module):
    """torch-fidelity's InceptionV3 (the TensorFlow FID network): 2048-d pool3 features, 1008 unbiased logits.

    Takes [-1, 1] floats N x 3 x H x W (N x 1 x H x W grayscale is repeated to RGB) and hands torch-fidelity
    the uint8 images it expects; it resizes to 299 x 299 itself.
    """

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor

    def _uint8(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"the inception feature network expects images N x 3 x H x W (or N x 1 x H x W) in [-1, 1]; got shape {tuple(x.shape)}"
            )
        return from_unit_range(x).expand(-1, 3, -1, -1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(self._uint8(x))[0]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(self._uint8(x))[1]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_checked_weights(name: str, path: Path, sidecar: Path, build: Callable[[dict], nn.Module], regenerate: str) -> nn.Module:
    """The network `build(sidecar info)` with the weights at `path`, in eval mode, after checking the file's SHA-256
    against the JSON `sidecar` (keys "sha256", "command" and what `build` reads); CheckpointError (saying how to
    regenerate) if either file is missing, the sidecar is invalid, or they disagree."""
    if not path.is_file() or not sidecar.is_file():
        missing = " and ".join(str(p) for p in (path, sidecar) if not p.is_file())
        raise CheckpointError(
            f"feature network {name!r}: {missing} missing; reinstall genlab or regenerate from a source checkout with `{regenerate}`"
        )
    try:
        info = json.loads(sidecar.read_text())
        regenerate, recorded = info["command"], info["sha256"]
        net = build(info)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"feature network {name!r}: {sidecar} is not a valid sidecar ({e!r}); regenerate it with `{regenerate}`"
        ) from None
    digest = file_sha256(path)
    if digest != recorded:
        raise CheckpointError(
            f"feature network {name!r}: {path} has SHA-256 {digest} but {sidecar} records {recorded}: the file is corrupt or was "
            f"replaced without its sidecar; reinstall genlab or regenerate both with `{regenerate}`"
        )
    ckpt.load_weights(path, net)
    net.weights_sha256 = digest
    return net.eval()


def load_shipped_net(name: str, weights_dir: str | os.PathLike | None = None) -> FeatureNet:
    """The shipped classifier `<name>_features.safetensors` in eval mode, hash-checked against its sidecar
    `<name>_features.json` (`load_checked_weights`)."""
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    return load_checked_weights(
        name,
        folder / f"{name}_features.safetensors",
        folder / f"{name}_features.json",
        lambda info: FeatureNet(num_classes=info["num_classes"], feature_dim=info["feature_dim"]),
        f"python {TRAIN_SCRIPT} --dataset {name} --out {folder}",
    )


@register_features("fashion_mnist", datasets=("fashion_mnist",))
def fashion_mnist_net() -> FeatureNet:
    """genlab's Fashion-MNIST classifier (shipped weights, hash-checked, eval mode)."""
    return load_shipped_net("fashion_mnist")


@register_features("mnist", datasets=("mnist",))
def mnist_net() -> FeatureNet:
    """genlab's MNIST classifier (shipped weights, hash-checked, eval mode)."""
    return load_shipped_net("mnist")


@register_features("inception")
def inception_net(weights_path: str | None = None) -> InceptionFeatures:
    """torch-fidelity's InceptionV3 for natural RGB images (optional extra `genlab[fidelity]`).

    `weights_path`: a local copy of torch-fidelity's weights file; without it torch-fidelity downloads them.
    """
    try:
        import torchvision  # noqa: F401  (torch-fidelity imports it; a broken build fails here, clearly)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # ImportError, or torchvision's RuntimeError when built for another torch
        raise GenlabError(
            "the 'inception' feature network needs torch-fidelity and a torch with a working torchvision: "
            f"`pip install genlab[fidelity]` with a torchvision that matches your torch ({type(e).__name__}: {e}). "
            "For Fashion-MNIST / MNIST use genlab's own 'fashion_mnist' / 'mnist' networks, or pass any nn.Module."
        ) from e
    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=weights_path)
    return InceptionFeatures(extractor).eval()


def get_feature_net(name_or_module: str | nn.Module) -> nn.Module:
    """A feature network: a registered name ("fashion_mnist", "mnist", "inception"), or any nn.Module.

    A module with `.features(x)` is used as it is; otherwise its forward output, flattened, is the feature
    (wrapped in ModuleFeatures). `.classify(x)` is needed only for accuracy and the Inception-Score analogue.
    """
    if isinstance(name_or_module, str):
        return registry.features(name_or_module)()
    if not isinstance(name_or_module, nn.Module):
        raise TypeError(f"a feature network is a registered name or an nn.Module, got {type(name_or_module).__name__}")
    return name_or_module if hasattr(name_or_module, "features") else ModuleFeatures(name_or_module)


def _logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if not hasattr(net, "classify"):
        raise ValueError(f"{type(net).__name__} has no .classify(x) method: it gives features but no class logits")
    return net.classify(x)


def _as_images(images: Images) -> torch.Tensor:
    """uint8 or [-1, 1] float images N x C x H x W (tensor or numpy) -> a tensor, checked."""
    x = images if torch.is_tensor(images) else torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"images must be a non-empty N x C x H x W array, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or floats in [-1, 1], got dtype {x.dtype}")
    if x.is_floating_point() and (x.min() < -1.5 or x.max() > 1.5):
        raise ValueError(f"float images must lie in [-1, 1], got values in [{x.min():.3g}, {x.max():.3g}]; pass uint8 or rescale")
    return x


@torch.no_grad()
def _apply(net: str | nn.Module, images: Images, fn: Callable[[nn.Module, torch.Tensor], torch.Tensor], batch_size: int) -> np.ndarray:
    """fn(net, batch) over `images` in batches on the net's device, in eval mode; float64 numpy (N, D)."""
    net = get_feature_net(net)
    x = _as_images(images)
    device = next(net.parameters(), torch.empty(0)).device
    was_training = net.training
    net.eval()
    try:
        out = []
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size].to(device)
            batch = to_unit_range(batch) if batch.dtype == torch.uint8 else batch.float()
            out.append(fn(net, batch).flatten(1).double().cpu())
    finally:
        net.train(was_training)
    return torch.cat(out).numpy()


def extract_features(net: str | nn.Module, images: Images, batch_size: int = 500) -> np.ndarray:
    """Features (N, D) as float64 numpy of images: uint8 N x C x H x W (as in genlab's .npz sample files) or
    floats in [-1, 1]; batched, without gradients, in eval mode, on the net's device.

    >>> extract_features(FeatureNet(), np.zeros((3, 1, 28, 28), np.uint8)).shape
    (3, 128)
    """
    return _apply(net, images, lambda m, x: m.features(x), batch_size)


def extract_logits(net: str | nn.Module, images: Images, batch_size: int = 500) -> np.ndarray:
    """Classifier logits (N, K) as float64 numpy; images as in `extract_features`."""
    return _apply(net, images, _logits, batch_size)


def classifier_accuracy(net: str | nn.Module, images: Images, labels: torch.Tensor | np.ndarray, batch_size: int = 500) -> float:
    """Fraction of images whose argmax logit is the label, e.g. a class-conditional model's samples vs their labels."""
    labels = np.asarray(torch.as_tensor(labels).cpu())
    logits = extract_logits(net, images, batch_size)
    if labels.shape != (len(logits),):
        raise ValueError(f"expected {len(logits)} labels (one per image), got shape {labels.shape}")
    return float((logits.argmax(1) == labels).mean())


def inception_score_analogue(logits: torch.Tensor | np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016) with any classifier: exp(E_x[KL(p(y|x) || p(y))]).

    As in the original code, the N predictions are cut into `splits` contiguous parts; p(y) is each part's
    mean prediction, and the result is the (mean, std) of the per-part scores. Computed in float64 from
    log-softmax. 1 for a classifier that says the same for every image; K (classes) at best.
    """
    log_p = F.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
    n = len(log_p)
    if log_p.ndim != 2 or not 1 <= splits <= n:
        raise ValueError(f"need logits (N, K) with N >= splits={splits}, got shape {tuple(log_p.shape)}")
    scores = []
    for k in range(splits):
        part = log_p[k * n // splits : (k + 1) * n // splits]
        log_py = torch.logsumexp(part, dim=0) - np.log(len(part))
        kl = (part.exp() * (part - log_py)).sum(1)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def weights_sha256(net: nn.Module) -> str:
    """The net's weights hash: the shipped file's SHA-256 when it has one, else a SHA-256 of its state dict."""
    known = getattr(net, "weights_sha256", None)
    if known:
        return known
    h = hashlib.sha256()
    for key, value in sorted(net.state_dict().items()):
        h.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        h.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d buffers too
    return h.hexdigest()


def default_cache_dir() -> Path:
    """$GENLAB_CACHE/reference, else ~/.cache/genlab/reference."""
    root = os.environ.get("GENLAB_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "genlab") / "reference"


def reference_stats(
    dataset: str, split: str, net_name: str, *, n: int | None = None, cache_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Features of the first `n` (default all) images of a dataset split under a registered feature network,
    with their Gaussian statistics: {"features": (N, D), "mu": (D,), "sigma": (D, D)}, float64.

    Cached as `<dataset>_<split>_<net>_<weights sha256[:12]>_<n or all>.npz` in `cache_dir` (default
    `default_cache_dir()`), written atomically; new weights give a new key, so a stale cache is never read.
    """
    net = get_feature_net(net_name)
    key = f"{dataset}_{split}_{net_name}_{weights_sha256(net)[:12]}_{'all' if n is None else n}"
    path = Path(cache_dir) / f"{key}.npz" if cache_dir is not None else default_cache_dir() / f"{key}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {"features": f["features"].astype(np.float64), "mu": f["mu"], "sigma": f["sigma"]}

    ds, _ = load_dataset(DataConfig(name=dataset), split)
    if n is not None and not 2 <= n <= len(ds):
        raise ValueError(f"n={n}: the {split} split of {dataset} has {len(ds)} examples (need 2 <= n <= {len(ds)})")
    feats = extract_features(net, ds.x[:n])
    mu, sigma = gaussian_stats(feats)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, features=feats.astype(np.float32), mu=mu, sigma=sigma)

    ckpt.atomic_write(path, write)
    return {"features": feats, "mu": mu, "sigma": sigma}
