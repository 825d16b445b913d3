"""Video clips (T x C x H x W in [-1, 1]): prediction metrics (per-frame MSE / MAE / SSIM / PSNR as in OpenSTL), frame
FID and identity consistency in the frame dataset's feature network; animated GIFs, PNG frame strips and uint8 .npz."""

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
from genlab.metrics.feature_nets import extract_features, extract_logits, get_feature_net
from genlab.metrics.feature_nets import weights_sha256 as net_hash
from genlab.metrics.fid import fid
from genlab.metrics.video import PSNR_CAP, prediction_metrics
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
    """Frames (M, 1, H, W) in [-1, 1] -> (size x size crops around each frame's intensity centroid, resized to 28 x 28
    for the feature network; the centroids (M, 2) in pixels, row and column). A blank frame's centroid is its centre."""
    M, _, H, W = frames.shape
    w = (frames[:, 0].double() + 1) / 2
    mass = w.sum((1, 2))
    rows, cols = torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64)
    safe = mass.clamp(min=1e-12)
    centre = torch.stack([(w.sum(2) * rows).sum(1) / safe, (w.sum(1) * cols).sum(1) / safe], 1)
    centre[mass < 1e-12] = torch.tensor([(H - 1) / 2, (W - 1) / 2], dtype=torch.float64)
    top = (centre - (size - 1) / 2).round().long()
    top[:, 0], top[:, 1] = top[:, 0].clamp(0, H - size), top[:, 1].clamp(0, W - size)
    offs = torch.arange(size)
    r = top[:, 0, None, None] + offs[None, :, None]
    c = top[:, 1, None, None] + offs[None, None, :]
    crops = frames[torch.arange(M)[:, None, None], 0, r, c][:, None]
    return F.interpolate(crops.float(), size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False), centre


def frames_for_features(frames: torch.Tensor) -> torch.Tensor:
    """Whole frames (M, 1, H, W) resized (area) to the feature network's 28 x 28."""
    if frames.shape[-1] == FEATURE_SIZE:
        return frames.float()
    return F.interpolate(frames.float(), size=(FEATURE_SIZE, FEATURE_SIZE), mode="area")


def identity_consistency(net: Any, clips: torch.Tensor, object_size: int) -> tuple[float, np.ndarray]:
    """The share of clips whose frames all get the same class from the classifier `net` (on the object crops), and the
    predicted classes (N, T)."""
    N, T = clips.shape[:2]
    crops, _ = object_crops(clips.flatten(0, 1), object_size)
    pred = extract_logits(net, crops).argmax(1).reshape(N, T)
    return float((pred == pred[:, :1]).all(1).mean()), pred


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
        frame dataset's feature network, against the test clips' frames), identity consistency and, for one-object
        clips, the trajectory error (pixels between the intensity centroids of predicted and true frames)."""
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
        """Frame FID, identity consistency; for `paired` clips (predictions of the reference clips) identity accuracy
        and trajectory error."""
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
        if labels is not None and labels.ndim == 2 and labels.shape[1] == 1 and size and hasattr(net, "classify"):
            out["identity_consistency"], pred = identity_consistency(net, made, size)
            if paired:
                out["identity_accuracy"] = float((pred == labels[: len(pred), :1]).mean())
                _, c_made = object_crops(made.flatten(0, 1), size)
                _, c_ref = object_crops(ref.flatten(0, 1), size)
                out["trajectory_error"] = float((c_made - c_ref).norm(dim=1).mean())
            conv["identity_consistency"] = (
                f"share of clips whose frames all get one class from {name}'s classifier, on {size} x {size} crops at the "
                "intensity centroid resized to 28 x 28; identity_accuracy: share of frames classified as the clip's object"
            )
            conv["trajectory_error"] = "mean distance in pixels between the intensity centroids of the made and the true frames"
        return out
