"""`video_folder`: any folder of clips — animated GIFs, video files (MP4, AVI, WebM, MOV, MKV through imageio's ffmpeg
plugin when `imageio-ffmpeg` is installed) or folders of frame images — resized and centre-cropped to square frames,
cut into clips of a fixed number of frames, labelled by first-level sub-folder when every clip has one."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genlab.config import DataConfig
from genlab.data.folder import IMAGE_EXTENSIONS, MIN_SIZE, TEST_FRACTION, _load
from genlab.data.video import VideoDataset
from genlab.errors import DataError
from genlab.registry import register_dataset
from genlab.spec import DataSpec

VIDEO_EXTENSIONS = (".gif", ".mp4", ".avi", ".webm", ".mov", ".mkv")


def list_clips(folder: Path) -> list[Path]:
    """Every clip under `folder`, sorted: each video file, and each folder that directly holds frame images (its
    frames are its images in sorted name order). Hidden files and folders are skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        visible = [f for f in filenames if not f.startswith(".")]
        found += [Path(dirpath) / f for f in visible if f.lower().endswith(VIDEO_EXTENSIONS)]
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in visible):
            found.append(Path(dirpath))
    return sorted(found)


def _frames_of_file(path: Path) -> np.ndarray:
    """The frames of a GIF or video file as uint8 (T, H, W, 3)."""
    import imageio.v3 as iio

    try:
        frames = np.asarray(iio.imread(path, index=None))
    except ImportError as e:
        raise DataError(f"{path}: reading {path.suffix} files needs imageio's ffmpeg plugin ({e}); pip install imageio-ffmpeg") from None
    except Exception as e:  # imageio and its plugins raise many types for files they cannot parse
        raise DataError(f"{path}: not a readable clip ({type(e).__name__}: {e}); remove it or replace it") from None
    if frames.ndim == 3:  # (T, H, W) grayscale GIF
        frames = np.repeat(frames[..., None], 3, -1)
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise DataError(f"{path}: expected frames (T, H, W[, C]), got an array of shape {frames.shape}")
    return frames[..., :3].astype(np.uint8)


def _resize(frame: np.ndarray, size: int, mode: str) -> np.ndarray:
    """One frame (H, W, 3) scaled so its shorter side is `size`, centre-cropped to size x size, in `mode` (L or RGB)."""
    im = Image.fromarray(frame).convert(mode)
    w, h = im.size
    scale = size / min(w, h)
    w2, h2 = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((w2, h2), Image.Resampling.BICUBIC)
    left, top = (w2 - size) // 2, (h2 - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def read_clip(path: Path, size: int, mode: str) -> np.ndarray:
    """A clip as uint8 (T, size, size[, 3]): a video file's frames, or a folder's frame images in name order."""
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        return np.stack([_load(f, size, mode) for f in files])
    return np.stack([_resize(f, size, mode) for f in _frames_of_file(path)])


def clip_length(path: Path) -> tuple[int, int]:
    """(frames, shorter side of a frame) of a clip, reading as little as it can."""
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        with Image.open(files[0]) as im:
            return len(files), min(im.size)
    frames = _frames_of_file(path)
    return len(frames), min(frames.shape[1:3])


def _splits(root: Path, seed: int) -> dict[str, tuple[Path, list[Path]]]:
    """split -> (base folder, clips): the folder's train/ and test/ sub-folders, or a seeded 10% hold-out."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return {s: (root / s, list_clips(root / s)) for s in ("train", "test")}
    clips = list_clips(root)
    order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = round(TEST_FRACTION * len(clips)) if len(clips) >= 10 else min(1, len(clips) - 1)
    return {"train": (root, sorted(clips[i] for i in order[n_test:])), "test": (root, sorted(clips[i] for i in order[:n_test]))}


@register_dataset("video_folder")
def video_folder(cfg: DataConfig, split: str) -> VideoDataset:
    """The clips under `cfg.root` as uint8 (N, T, C, S, S).

    T is cfg.frames (default: the shortest clip's length); every clip gives floor(length / T) consecutive windows of T
    frames (clips shorter than T are skipped, with a warning). S is cfg.image_size (default: the shorter side of the
    first clip's frames); C is cfg.channels (default 1: grayscale). Labels are the sorted names of the first-level
    sub-folders when every clip lies in one (below `train/` and `test/` when the folder has both, which then give the
    splits); otherwise unlabelled. Without train/ and test/, a seeded 10% of the clips is the test split.
    """
    if cfg.root is None:
        raise DataError("video_folder needs the folder of clips: set data.root=<folder>")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={cfg.root!r} is not a folder{'' if root.exists() else ' (it does not exist)'}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: expected 'train' or 'test'")
    splits = _splits(root, cfg.seed)
    everything = sorted(p for _, clips in splits.values() for p in clips)
    if not everything:
        raise DataError(
            f"{root} holds no clips: expected {', '.join(VIDEO_EXTENSIONS)} files or folders of frame images "
            f"({', '.join(IMAGE_EXTENSIONS)})"
        )
    rel = {s: [p.relative_to(base).parts for p in clips] for s, (base, clips) in splits.items()}
    labelled = all(len(parts) > 1 for r in rel.values() for parts in r)
    class_names = tuple(sorted({parts[0] for r in rel.values() for parts in r})) if labelled else ()

    lengths = {p: clip_length(p) for p in everything}
    T = cfg.frames or min(n for n, _ in lengths.values())
    size = cfg.image_size or lengths[everything[0]][1]
    if size < MIN_SIZE:
        raise DataError(f"{everything[0]}: frames of {size} pixels on the shorter side; set data.image_size (>= {MIN_SIZE})")
    if T < 2:
        raise DataError(f"{root}: clips of {T} frame(s); a clip needs at least 2 frames (set data.frames or add longer clips)")
    channels = cfg.channels or 1
    mode = "L" if channels == 1 else "RGB"

    clips, labels, short = [], [], []
    for path, parts in zip(splits[split][1], rel[split]):
        n = lengths[path][0]
        if n < T:
            short.append(path.name)
            continue
        frames = read_clip(path, size, mode).reshape(n, size, size, channels)
        for w in range(n // T):
            clips.append(frames[w * T : (w + 1) * T])
            labels.append(class_names.index(parts[0]) if labelled else 0)
    if short:
        warnings.warn(f"video_folder: {len(short)} clip(s) shorter than data.frames={T} were skipped (e.g. {short[0]})")
    x = np.stack(clips) if clips else np.zeros((0, T, size, size, channels), np.uint8)
    spec = DataSpec(
        shape=(T, channels, size, size), num_classes=len(class_names), encoding="8bit", class_names=class_names, modality="video"
    )
    return VideoDataset(
        x=torch.from_numpy(x).permute(0, 1, 4, 2, 3).contiguous(),
        y=torch.tensor(labels, dtype=torch.int64) if labelled else None,
        spec=spec,
        name=root.name or str(root),
    )
