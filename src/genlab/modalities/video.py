"""Video clips (T x C x H x W in [-1, 1]): prediction metrics (per-frame MSE / MAE / SSIM / PSNR as in OpenSTL), frame
FID, identity consistency and trajectory error of up to 3 tracked objects (`genlab.metrics.video_tracking`); animated
GIFs, PNG frame strips and uint8 .npz."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from genlab import registry
from genlab.checkpoint import atomic_write
from genlab.config import RunConfig
from genlab.data.transforms import from_unit_range, to_unit_range
from genlab.errors import ConfigError, DataError
from genlab.metrics.clip_features import clip_features
from genlab.metrics.feature_nets import extract_features, get_feature_net
from genlab.metrics.feature_nets import weights_sha256 as net_hash
from genlab.metrics.fid import fid
from genlab.metrics.video import PSNR_CAP, prediction_metrics
from genlab.metrics.video_tracking import (
    crop_objects,
    detect_objects,
    identity_coverage,
    identity_share,
    matched_track_error,
    multiset_accuracy,
    physics_error,
    track_identities,
    track_objects,
)
from genlab.modalities.base import Modality
from genlab.modalities.image import image_grid, save_image_grid
from genlab.models.sampling import timed_samples
from genlab.registry import register_modality
from genlab.spec import DataSpec

PREVIEW_CLIPS = 8
FEATURE_SIZE = 28  # the feature networks read 28 x 28 images
GIF_SECONDS_PER_FRAME = 0.15


def takes_context(model: Any) -> bool:
    """Whether a model predicts from given frames (its `sample` takes `context`, and it was trained with given frames)."""
    return any(o.name == "context" for o in model.sample_options()) and getattr(model, "context_frames", 1) > 0


def predict_clips(
    model: Any, clips: torch.Tensor, batch_size: int = 256, *, labels: torch.Tensor | None = None, seed: int = 0, **sample_kwargs: Any
) -> torch.Tensor:
    """Whole clips (N, T, C, H, W) in [-1, 1] on the CPU: the model's prediction from the given frames of `clips`
    (uint8 or [-1, 1]), in batches; a class-conditional model gets the clips' `labels`, a stochastic one seeded noise."""
    out, g = [], torch.Generator().manual_seed(seed)
    conditional = bool(getattr(model, "conditional", False))
    if conditional and labels is None:
        raise ConfigError("a class-conditional video model predicts clips of known classes: the reference clips have no labels")
    for s in range(0, len(clips), batch_size):
        ctx = clips[s : s + batch_size]
        ctx = to_unit_range(ctx) if ctx.dtype == torch.uint8 else ctx
        y = labels[s : s + len(ctx)] if conditional else None
        out.append(model.sample(len(ctx), labels=y, context=ctx, generator=g, **sample_kwargs).cpu())
    return torch.cat(out)


def frame_grid(x: torch.Tensor) -> np.ndarray:
    """Clips (N, T, C, H, W) -> uint8 frames (T, H', W') of an animation: frame t shows every clip's frame t in a grid."""
    return np.stack([image_grid(x[:, t])[..., 0] if x.shape[2] == 1 else image_grid(x[:, t]) for t in range(x.shape[1])])


def object_crops(frames: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (M, 1, H, W) in [-1, 1] holding one object each -> (size x size crops around the tracked centre,
    resized to 28 x 28 for the feature network; the centres (M, 2) in pixels, row and column): the intensity
    centroid of the pixels brighter than the background in a size x size window (`video_tracking.detect_objects`).
    A blank frame's centre is its middle."""
    centres, _ = detect_objects((frames[:, 0].float() + 1) / 2, 1, size)
    crops = crop_objects(frames, centres, size, FEATURE_SIZE)[:, 0]
    return crops, torch.from_numpy(centres[:, 0])


def frames_for_features(frames: torch.Tensor) -> torch.Tensor:
    """Whole frames (M, 1, H, W) resized (area) to the feature network's 28 x 28."""
    if frames.shape[-1] == FEATURE_SIZE:
        return frames.float()
    return F.interpolate(frames.float(), size=(FEATURE_SIZE, FEATURE_SIZE), mode="area")


def identity_consistency(net: Any, clips: torch.Tensor, object_size: int) -> tuple[float, np.ndarray]:
    """One-object clips: the share of clips whose frames all get the same class from the classifier `net` (on the
    object crops), and the predicted classes (N, T). Several objects: `video_tracking.track_identities`."""
    tracked = track_identities(net, clips, 1, object_size, out_size=FEATURE_SIZE)
    return identity_share(tracked.classes), tracked.classes[..., 0]


@register_modality("video")
class VideoModality(Modality):
    """Clips stored uint8 (N, T, 1, H, W) and shown to models in [-1, 1]; frames first, so x[:, t] is an image batch."""

    suffixes: ClassVar[tuple[str, ...]] = (".gif", ".mp4", ".png", ".npz")
    headline: ClassVar[tuple[tuple[str, str], ...]] = (
        ("mse", "MSE/frame"),
        ("ssim", "SSIM"),
        ("psnr", "PSNR (dB)"),
        ("frame_fid", "frame FID"),
        ("fd_clip", "FD clip (in-house)"),
        ("identity_consistency", "identity consistency"),
    )

    def preview_count(self, requested: int) -> int:
        return min(requested, PREVIEW_CLIPS)

    def preview_samples(
        self, model: Any, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, reference: Any = None
    ) -> torch.Tensor:
        """What a preview shows: a predictor's clips from the given frames of the first n `reference` (test) clips;
        other models' samples."""
        if takes_context(model):
            if reference is None:
                raise ConfigError("a video predictor's preview needs reference clips for its given frames")
            return predict_clips(model, reference.x[:n], labels=getattr(reference, "y", None))
        return model.sample(n, labels=labels, generator=generator)

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict[str, np.ndarray]:
        return {"clips": from_unit_range(x).numpy()}

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        """.png: a frame strip, one row per clip, and the same clips as a .gif of the same name beside it (what reports
        play); .gif / .mp4: an animation of all clips side by side (enlarged 2x below 64 px;
        MP4 needs `imageio-ffmpeg`, H.264 at the GIF's frame rate, sides padded to multiples of 16)."""
        path = Path(path)
        if x.ndim != 5:
            raise DataError(f"video previews take clips (N, T, C, H, W); got shape {tuple(x.shape)}")
        scale = 2 if x.shape[-1] < 64 else 1
        if path.suffix == ".png":
            self.preview(x, path.with_suffix(".gif"), spec=spec, labels=labels, reference=reference)
            return save_image_grid(x.flatten(0, 1), path, nrow=x.shape[1], scale=scale)
        if path.suffix not in (".gif", ".mp4"):
            raise ConfigError(f"{path}: a video preview is a .png frame strip, a .gif or an .mp4")
        import imageio.v3 as iio

        frames = frame_grid(x)
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
        if path.suffix == ".gif":
            atomic_write(path, lambda tmp: iio.imwrite(tmp, frames, extension=".gif", duration=int(1000 * GIF_SECONDS_PER_FRAME), loop=0))
            return path
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError(f"{path}: writing MP4 needs imageio's ffmpeg plugin: pip install imageio-ffmpeg (or write a .gif)") from None
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, -h % 16), (0, -w % 16)) + ((0, 0),) * (frames.ndim - 3))
        fps = 1 / GIF_SECONDS_PER_FRAME
        atomic_write(path, lambda tmp: iio.imwrite(tmp, frames, extension=".mp4", fps=fps, codec="libx264", output_params=["-f", "mp4"]))
        return path

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """A predictor (a model taking `context`): per-frame MSE / MAE / SSIM / PSNR of its predictions of the first
        eval.n_samples test clips' future frames, and the frame metrics below on the predicted frames. A generator:
        the frame metrics on eval.n_samples clips. Frame metrics: frame FID (whole frames resized to 28 x 28, in the
        frame dataset's feature network, against the test clips' frames), identity consistency of the K tracked objects
        and trajectory error: for a predictor against the tracks in the true frames, for a generator against the
        generator's physics."""
        ec, kw = cfg.eval, dict(sample_kwargs or {})
        if "context" in kw:
            raise ConfigError("genlab eval predicts from the test clips' given frames itself: drop --context")
        n = min(ec.n_samples, len(test))
        true = to_unit_range(test.x[:n])
        out: dict[str, Any] = {}
        conv: dict[str, Any] = {"n_clips": n, "reference": f"{cfg.data.name}/{ec.split}", "seed": ec.seed}
        if takes_context(model):
            C = model.context_frames
            start = time.perf_counter()
            clips = predict_clips(model, true, labels=getattr(test, "y", None), seed=ec.seed, **kw)
            out["seconds_per_clip"] = (time.perf_counter() - start) / n
            made, ref = clips[:, C:], true[:, C:]
            out.update(prediction_metrics(made, ref))
            conv["prediction"] = (
                f"{C} given -> {clips.shape[1] - C} predicted frames; per frame, pixels u in [0, 1]: mse and mae summed over the "
                f"frame's pixels (OpenSTL's convention), psnr 10 log10(1 / mean (du)^2) with identical frames counted as "
                f"{PSNR_CAP:g} dB, ssim with a Gaussian 7 x 7 window (sigma 1.5); averaged over clips and frames"
            )
        else:
            made, _, sec = timed_samples(model, n, ec.seed, **kw)
            ref = true
            out["seconds_per_clip"] = sec
        out.update(self._frame_metrics(cfg, test, made, ref, conv, paired=takes_context(model)))
        out.update(self._clip_metrics(cfg, clips if takes_context(model) else made, true, conv))
        return out, conv

    @staticmethod
    def _clip_metrics(cfg: RunConfig, made: torch.Tensor, ref: torch.Tensor, conv: dict) -> dict[str, Any]:
        """fd_clip: the Fréchet distance between whole made clips (a predictor's: given + predicted frames) and the
        test clips in the features of the dataset's in-house clip network, when one is registered for it."""
        name = registry.features_for_dataset(cfg.data.name)
        if name is None:
            return {}
        net = get_feature_net(name)
        f_made, f_ref = clip_features(net, made), clip_features(net, ref)
        conv["fd_clip"] = (
            f"Fréchet distance of {len(f_made)} whole clips to {len(f_ref)} test clips in the features of genlab's in-house 3-D conv "
            f"clip network {name!r} (trained on object identity and motion direction); not comparable with published FVD"
        )
        conv["clip_features_sha256"] = net_hash(net)
        return {"fd_clip": fid(f_ref, f_made)}

    @staticmethod
    def _frame_metrics(cfg: RunConfig, test: Any, made: torch.Tensor, ref: torch.Tensor, conv: dict, paired: bool) -> dict[str, Any]:
        """Frame FID, identity consistency of the K tracked objects (K = test.labels.shape[1] <= 3), and trajectory
        error: for `paired` clips (predictions of the reference clips) against the tracks in the true frames, with
        identity accuracy; else against the generator's physics."""
        source = getattr(test, "source", "")
        name = cfg.eval.features or registry.features_for_dataset(source)
        if name is None:
            warnings.warn(f"no feature network for the frames of {cfg.data.name}; set eval.features for frame FID")
            return {}
        net = get_feature_net(name)
        conv.update({"features": name, "features_sha256": net_hash(net)})
        out: dict[str, Any] = {}
        f_made = extract_features(net, frames_for_features(made.flatten(0, 1)))
        f_ref = extract_features(net, frames_for_features(ref.flatten(0, 1)))
        out["frame_fid"] = fid(f_ref, f_made)
        conv["frame_fid"] = f"{len(f_made)} frames vs {len(f_ref)} test frames, resized (area) to 28 x 28; pytorch-fid algorithm"
        labels = getattr(test, "labels", None)
        size = getattr(test, "object_size", 0)
        if labels is not None and labels.ndim == 2 and 1 <= labels.shape[1] <= 3 and size and hasattr(net, "classify"):
            K, frame = labels.shape[1], (made.shape[-2], made.shape[-1])
            tracked = track_identities(net, made, K, size, out_size=FEATURE_SIZE)
            out["identity_consistency"] = identity_share(tracked.classes, tracked.apart)
            out["identity_coverage"] = identity_coverage(tracked.apart)
            conv["identity_consistency"] = (
                f"share of clips in which each of the {K} tracked objects keeps one class from {name}'s classifier over the "
                f"frames where it touches no other object, on {size} x {size} crops around its tracked centre (pixels nearer "
                "another object blanked) resized to 28 x 28; an object that touches another in every frame is not judged: "
                "identity_coverage is the share of objects judged; tracker and conventions: genlab.metrics.video_tracking"
            )
            if paired:
                out["identity_accuracy"] = multiset_accuracy(tracked.classes, labels[: len(made)], tracked.apart)
                out["trajectory_error"] = matched_track_error(tracked.centres, track_objects(ref, K, size).centres)
                conv["identity_accuracy"] = "share of objects (where apart) whose class is one of the clip's true classes, per frame"
                conv["trajectory_error"] = (
                    f"mean distance in pixels between the {K} tracked centres in the predicted and in the true frames, the tracks "
                    "of each clip matched by the Hungarian assignment"
                )
            else:
                floor = track_objects(ref, K, size)
                out["trajectory_error"] = physics_error(tracked.centres, frame, size, tracked.apart)
                conv["trajectory_error"] = (
                    "trajectory plausibility: mean distance in pixels between each tracked centre and the least-squares best track "
                    "under the generator's physics (constant velocity, mirrored at the borders), fitted and averaged over the frames "
                    "where the object touches no other (objects apart in fewer than two frames left out); the "
                    f"{len(ref)} test clips themselves: {physics_error(floor.centres, frame, size, floor.apart):.3g}"
                )
        return out
