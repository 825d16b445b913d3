"""`image_folder`: any folder of PNG/JPEG/BMP images, resized and centre-cropped to squares, labelled by
first-level sub-folder when every image has one, loaded whole into memory (for small datasets)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit (or 32-bit integer) grayscale
GRAYSCALE_MODES = ("1", "L", "LA", "F", *WIDE_MODES)
MIN_SIZE = 4
TEST_FRACTION = 0.1


def list_images(folder: Path) -> list[Path]:
    """Every image under `folder` (recursively, skipping hidden files and folders), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _open(path: Path) -> Image.Image:
    """The image at `path`, its header read; a DataError for a file PIL cannot identify or one above PIL's
    decompression-bomb limit (Image.MAX_IMAGE_PIXELS), before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(
            f"{path}: {e} genlab refuses images above PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels: shrink or "
            "remove it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file"
        ) from None
    except Exception as e:  # PIL raises a zoo of types (OSError, SyntaxError, ValueError ...) for files it cannot parse
        raise DataError(f"{path}: not a readable image ({e}); remove it or replace it") from None


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit grayscale scaled to 8 bits, v -> round(v / 257) (PIL's own conversion clips every value above 255 to white)."""
    if im.mode not in WIDE_MODES:
        return im
    wide = np.asarray(im).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(wide / 257), 0, 255).astype(np.uint8), "L")


def _load(path: Path, size: int, mode: str) -> np.ndarray:
    """The image scaled so its shorter side is `size`, centre-cropped to size x size, as H x W (x C) uint8."""
    with _open(path) as im:
        try:
            im = _to_8bit(im).convert(mode)
        except Exception as e:  # decoding errors surface here: PIL opens lazily
            raise DataError(f"{path}: cannot decode it ({e}); the file is truncated or corrupt") from None
        w, h = im.size
        scale = size / min(w, h)
        w2, h2 = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((w2, h2), Image.Resampling.BICUBIC)
        left, top = (w2 - size) // 2, (h2 - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)))


def _splits(root: Path, seed: int) -> dict[str, tuple[Path, list[Path]]]:
    """split -> (base folder, files): the folder's own train/ and test/ sub-folders, or a seeded 10%
    hold-out of everything; each list in a seeded random order, so that its first n are a fair sample."""
    g = torch.Generator().manual_seed(seed)
    if (root / "train").is_dir() and (root / "test").is_dir():
        files = {s: list_images(root / s) for s in ("train", "test")}
        return {s: (root / s, [f[i] for i in torch.randperm(len(f), generator=g).tolist()]) for s, f in files.items()}
    files = list_images(root)
    order = torch.randperm(len(files), generator=g).tolist()
    n_test = round(TEST_FRACTION * len(files)) if len(files) >= 10 else min(1, len(files) - 1)
    return {"train": (root, [files[i] for i in order[n_test:]]), "test": (root, [files[i] for i in order[:n_test]])}


@register_dataset("image_folder")
def image_folder(cfg: DataConfig, split: str) -> ArrayDataset:
    """The images under `cfg.root` as uint8 N x C x S x S.

    S is cfg.image_size (default: the shorter side of the first image, in sorted order); C is
    cfg.channels (default 1 if every image is grayscale, else 3). Labels are the sorted names of the
    first-level sub-folders when every image lies in one (below `train/` and `test/` when the folder
    has both, which then give the splits); otherwise unlabelled. Without train/ and test/, a seeded
    10% of the images is the test split (one image when there are 2 to 9, none for a single image).
    """
    if cfg.root is None:
        raise DataError("image_folder needs the folder of images: set data.root=<folder>")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={cfg.root!r} is not a folder{'' if root.exists() else ' (it does not exist)'}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    splits = _splits(root, cfg.seed)
    everything = sorted(p for _, files in splits.values() for p in files)
    if not everything:
        raise DataError(f"{root} holds no images: expected files ending in {', '.join(IMAGE_EXTENSIONS)} (in any sub-folder)")

    # The class of an image is its first folder below the split's base folder.
    rel = {s: [p.relative_to(base).parts for p in files] for s, (base, files) in splits.items()}
    labelled = all(len(parts) > 1 for r in rel.values() for parts in r)
    class_names = tuple(sorted({parts[0] for r in rel.values() for parts in r})) if labelled else ()

    size = cfg.image_size
    if size is None:
        with _open(everything[0]) as im:
            size = min(im.size)
        if size < MIN_SIZE:
            raise DataError(
                f"{everything[0]} is {im.size[0]}x{im.size[1]} pixels, which sets the image size to {size}; "
                f"set data.image_size (>= {MIN_SIZE}) to scale the images to a usable size"
            )
    channels = cfg.channels
    if channels is None:
        modes = set()
        for path in everything:
            with _open(path) as im:
                modes.add(im.mode)
        channels = 1 if modes <= set(GRAYSCALE_MODES) else 3

    files = splits[split][1]
    mode = "L" if channels == 1 else "RGB"
    pixels = np.stack([_load(p, size, mode) for p in files]) if files else np.zeros((0, size, size), np.uint8)
    x = torch.from_numpy(pixels.reshape(len(files), size, size, channels)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([class_names.index(parts[0]) for parts in rel[split]], dtype=torch.int64) if labelled else None
    spec = DataSpec(shape=(channels, size, size), num_classes=len(class_names), encoding="8bit", class_names=class_names)
    return ArrayDataset(x, y, spec, root.name or str(root))
