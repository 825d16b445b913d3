"""Moving MNIST (Srivastava et al. 2015, "Unsupervised Learning of Video Representations using LSTMs") and Moving
Fashion-MNIST, generated deterministically from a seed: objects bounce in a square frame at constant speed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genlab import registry
from genlab.config import DataConfig
from genlab.data.base import ArrayDataset
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

TEST_SEED = 10_000_019  # the fixed test set: independent of data.seed, so every run scores on the same clips
SPEED = 0.1  # pixels per frame as a fraction of the free range H - s (Srivastava et al.'s step length 0.1)
OBJECT_SIZE = 28  # object side at the standard 64 x 64 frame; scaled with the frame (14 at 32 x 32)


@dataclass(frozen=True)
class Protocol:
    """One Moving-X benchmark: its source image dataset, frame size, objects per clip, frames, clips per split."""

    source: str
    image_size: int
    n_objects: int
    n_frames: int
    n_train: int
    n_test: int


PROTOCOLS = {
    "moving_mnist": Protocol("mnist", 64, 2, 20, 10_000, 10_000),
    "moving_fmnist": Protocol("fashion_mnist", 64, 2, 20, 10_000, 10_000),
    "moving_mnist_cpu": Protocol("mnist", 32, 1, 16, 10_000, 2_000),
    "moving_fmnist_cpu": Protocol("fashion_mnist", 32, 1, 16, 10_000, 2_000),
}


@dataclass
class VideoDataset(ArrayDataset):
    """Clips `x` uint8 (N, T, 1, H, W) with the generator's ground truth: `positions` and `velocities` (N, T, K, 2) of
    each object's top-left corner (row, column) in pixels, `labels` (N, K) their classes, `source` the image dataset.
    `y` is the class of the first object (the class of the clip when K = 1)."""

    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 2)))
    velocities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 2)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    object_size: int = 0
    source: str = ""


def bounce(p0: np.ndarray, v0: np.ndarray, n_frames: int, limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Trajectories in [0, limit] at constant speed with specular reflection at the borders.

    p_{t+1} = p_t + v_t; where it leaves [0, L] it is mirrored back (p -> -p or 2L - p) and that velocity component
    flips sign. p0, v0: (..., 2) -> positions and velocities (..., T, 2), frame 0 at p0 with v0.
    """
    p, v = p0.astype(np.float64).copy(), v0.astype(np.float64).copy()
    ps, vs = [p.copy()], [v.copy()]
    for _ in range(n_frames - 1):
        p = p + v
        low, high = p < 0, p > limit
        p = np.where(low, -p, np.where(high, 2 * limit - p, p))
        v = np.where(low | high, -v, v)
        ps.append(p.copy())
        vs.append(v.copy())
    return np.stack(ps, -2), np.stack(vs, -2)


def resize_objects(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (M, 1, 28, 28) -> uint8 (M, size, size) by area averaging (the identity at size 28)."""
    x = images[:, 0]
    if size == x.shape[-1]:
        return x
    return F.interpolate(x[:, None].float(), size=(size, size), mode="area")[:, 0].round().clamp(0, 255).to(torch.uint8)


def moving_objects(
    images: torch.Tensor,
    classes: torch.Tensor,
    n: int,
    *,
    image_size: int = 64,
    n_objects: int = 2,
    n_frames: int = 20,
    seed: int = 0,
    draws: int | None = None,
) -> dict[str, np.ndarray]:
    """`n` clips of `n_objects` objects drawn from `images` (uint8 (M, 1, 28, 28), classes (M,)) bouncing in an
    image_size x image_size frame; overlapping objects combine by the pixelwise maximum.

    Each clip draws its objects, start positions uniform in [0, H - s]^2 and directions uniform on the circle, speed
    0.1 (H - s) pixels per frame. The random draws are made for max(n, draws) clips, so the first n clips of a larger
    set are the same clips (n_test = 100 is the first 100 of the fixed test set). Returns x (n, T, 1, H, W) uint8,
    positions / velocities (n, T, K, 2) float64 (top-left corners, row and column) and labels (n, K).
    """
    s = max(1, round(OBJECT_SIZE * image_size / 64))
    limit = image_size - s
    if limit <= 0:
        raise DataError(f"data.image_size={image_size} leaves no room for {s} x {s} objects to move; use at least 16")
    total = max(n, draws or 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(images), size=(total, n_objects))[:n]
    p0 = rng.uniform(0, limit, size=(total, n_objects, 2))[:n]
    theta = rng.uniform(0, 2 * np.pi, size=(total, n_objects))[:n]
    v0 = SPEED * limit * np.stack([np.sin(theta), np.cos(theta)], -1)
    pos, vel = bounce(p0, v0, n_frames, limit)  # (n, K, T, 2)
    pos, vel = pos.transpose(0, 2, 1, 3), vel.transpose(0, 2, 1, 3)  # (n, T, K, 2)
    objects = resize_objects(images, s).numpy()
    x = np.zeros((n, n_frames, image_size, image_size), np.uint8)
    top_left = np.rint(pos).astype(np.int64)
    clip = np.arange(n)[:, None, None]
    offs = np.arange(s)
    for t in range(n_frames):
        for k in range(n_objects):
            rows = top_left[:, t, k, 0][:, None, None] + offs[None, :, None]
            cols = top_left[:, t, k, 1][:, None, None] + offs[None, None, :]
            x[clip, t, rows, cols] = np.maximum(x[clip, t, rows, cols], objects[idx[:, k]])
    return {"x": x[:, :, None], "positions": pos, "velocities": vel, "labels": classes.numpy()[idx]}


def read_clips(path: str | os.PathLike) -> torch.Tensor:
    """Clips from a file as uint8 (N, T, C, H, W): an .npz with a "clips" array (what `genlab sample --out x.npz` writes
    for video) or one uint8 5-D array, or one animated .gif (grayscale frames) read with imageio as a single clip."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected an .npz of uint8 clips (N, T, 1, H, W) or a .gif")
    if path.suffix == ".gif":
        import imageio.v3 as iio

        frames = np.asarray(iio.imread(path, index=None))  # (T, H, W) or (T, H, W, 3|4)
        if frames.ndim == 4:
            frames = frames[..., :3].mean(-1).round().astype(np.uint8)
        return torch.from_numpy(np.ascontiguousarray(frames))[None, :, None]
    if path.suffix != ".npz":
        raise DataError(f"{path}: expected an .npz (uint8 clips (N, T, 1, H, W) under 'clips') or a .gif")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    five = [k for k, v in arrays.items() if v.ndim == 5]
    key = "clips" if "clips" in arrays else five[0] if len(five) == 1 else None
    if key is None or arrays[key].ndim != 5 or arrays[key].dtype != np.uint8:
        found = ", ".join(f"{k} {v.dtype} {v.shape}" for k, v in arrays.items())
        raise DataError(f"{path}: expected uint8 clips (N, T, 1, H, W) under 'clips'; found {found or 'no arrays'}")
    return torch.from_numpy(arrays[key])


_CACHE: dict[tuple, VideoDataset] = {}


def load_moving(name: str, cfg: DataConfig, split: str) -> VideoDataset:
    """The registered protocol `name` for `split`: the training clips come from the source's training images with
    seed data.seed, the test clips from its test images with the fixed TEST_SEED. data.image_size changes the frame
    (objects scale with it); data.n_train / data.n_test generate only that many clips (a prefix of the full set)."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    if cfg.pad_to is not None or cfg.channels not in (None, 1):
        raise DataError(f"{name}: data.pad_to and data.channels do not apply to video; set the frame size with data.image_size")
    proto = PROTOCOLS[name]
    size = cfg.image_size or proto.image_size
    full = proto.n_train if split == "train" else proto.n_test
    n = (cfg.n_train if split == "train" else cfg.n_test) or full
    seed = cfg.seed if split == "train" else TEST_SEED
    key = (name, split, size, n, seed, cfg.root)
    if key not in _CACHE:
        src = registry.dataset(proto.source)(cfg, split)
        out = moving_objects(src.x, src.y, n, image_size=size, n_objects=proto.n_objects, n_frames=proto.n_frames, seed=seed, draws=full)
        spec = DataSpec(
            shape=(proto.n_frames, 1, size, size),
            num_classes=src.spec.num_classes,
            encoding="8bit",
            class_names=src.spec.class_names,
            modality="video",
        )
        _CACHE[key] = VideoDataset(
            x=torch.from_numpy(out["x"]),
            y=torch.from_numpy(out["labels"][:, 0].astype(np.int64)),
            spec=spec,
            name=name,
            positions=out["positions"],
            velocities=out["velocities"],
            labels=out["labels"],
            object_size=max(1, round(OBJECT_SIZE * size / 64)),
            source=proto.source,
        )
    return _CACHE[key]


@register_dataset("moving_mnist")
def moving_mnist(cfg: DataConfig, split: str) -> VideoDataset:
    """Moving MNIST, the standard protocol: 64 x 64, 2 digits, 20 frames (10 given, 10 predicted); 10,000 test clips."""
    return load_moving("moving_mnist", cfg, split)


@register_dataset("moving_fmnist")
def moving_fmnist(cfg: DataConfig, split: str) -> VideoDataset:
    """Moving Fashion-MNIST, the standard protocol: 64 x 64, 2 objects, 20 frames; 10,000 test clips."""
    return load_moving("moving_fmnist", cfg, split)


@register_dataset("moving_mnist_cpu")
def moving_mnist_cpu(cfg: DataConfig, split: str) -> VideoDataset:
    """Moving MNIST, CPU size: 32 x 32, 1 digit (14 x 14), 16 frames (8 given, 8 predicted); 2,000 test clips."""
    return load_moving("moving_mnist_cpu", cfg, split)


@register_dataset("moving_fmnist_cpu")
def moving_fmnist_cpu(cfg: DataConfig, split: str) -> VideoDataset:
    """Moving Fashion-MNIST, CPU size: 32 x 32, 1 object (14 x 14), 16 frames; 2,000 test clips."""
    return load_moving("moving_fmnist_cpu", cfg, split)
