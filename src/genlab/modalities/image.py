"""Images (C x H x W in [-1, 1]): FID, KID, precision/recall and density/coverage on a feature network's features,
classifier accuracy and per-class FID for class-conditional models; PNG grids and uint8 .npz sample files."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab import registry
from genlab.checkpoint import atomic_write
from genlab.config import RunConfig
from genlab.data.transforms import from_unit_range
from genlab.errors import DataError
from genlab.metrics.feature_nets import extract_features, extract_logits, get_feature_net, inception_score_analogue, reference_stats
from genlab.metrics.feature_nets import weights_sha256 as net_hash
from genlab.metrics.fid import fid, fid_from_stats, gaussian_stats
from genlab.metrics.kid import kid
from genlab.metrics.prdc import density_coverage, precision_recall
from genlab.modalities.base import Modality
from genlab.models.sampling import timed_samples
from genlab.registry import register_modality
from genlab.spec import DataSpec

STABLE_SAMPLES = 2000  # fewer samples than this give FID/KID/PR values too noisy to compare


def image_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """N x C x H x W in [-1, 1] -> one H' x W' x C uint8 array, `nrow` images per row."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 255, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, scale: int = 1) -> Path:
    """Write a PNG grid of images in [-1, 1]; `scale` enlarges small images (nearest neighbour)."""
    from PIL import Image

    arr = image_grid(x, nrow)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    atomic_write(path, lambda tmp: img.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG")))
    return path


def feature_net_name(cfg: RunConfig, spec: DataSpec) -> str:
    """eval.features, else the network trained on the run's dataset, else torch-fidelity's Inception for RGB."""
    if cfg.eval.features is not None:
        registry.features(cfg.eval.features)  # a clear error for an unknown name
        return cfg.eval.features
    own = registry.features_for_dataset(cfg.data.name)
    if own is not None:
        return own
    if spec.shape[0] == 3:
        return "inception"
    raise DataError(f"no feature network for {cfg.data.name!r} images; set eval.features (genlab list) or eval.sample_metrics=false")


@register_modality("image")
class ImageModality(Modality):
    suffixes = (".png", ".npz")

    def preview(
        self, x: torch.Tensor, path: str | os.PathLike, *, spec: DataSpec, labels: torch.Tensor | None = None, reference: Any = None
    ) -> Path:
        nrow = spec.num_classes if labels is not None and 0 < spec.num_classes <= 16 else None
        return save_image_grid(x, path, nrow=nrow, scale=2 if x.shape[-1] <= 32 else 1)

    def arrays(self, x: torch.Tensor, spec: DataSpec) -> dict[str, np.ndarray]:
        return {"images": from_unit_range(x).numpy()}

    def sample_metrics(self, model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict, dict]:
        """FID, KID, precision/recall, density/coverage against the test split; accuracy, the Inception-Score analogue
        and per-class FID for class-conditional models. Returns (numbers, conventions)."""
        ec = cfg.eval
        name = feature_net_name(cfg, model.spec)
        net = get_feature_net(name)
        x, y, sec = timed_samples(model, ec.n_samples, ec.seed, **(sample_kwargs or {}))
        ref_shape = tuple(test.x.shape[1:])
        if x.shape[1] != ref_shape[0]:
            raise DataError(f"samples have shape {tuple(x.shape[1:])} but the reference images {ref_shape}: channels differ")
        if ec.n_samples < STABLE_SAMPLES:
            warnings.warn(f"eval.n_samples={ec.n_samples}: FID/KID/precision/recall need at least {STABLE_SAMPLES} samples to be stable")
        try:
            feats = extract_features(net, x)
        except ValueError as e:
            raise DataError(f"samples of shape {tuple(x.shape[1:])} do not fit the feature network {name!r}: {e}") from None
        if registry.features_for_dataset(cfg.data.name) == name:
            ref = reference_stats(cfg.data.name, ec.split, name)  # the whole split, cached
        else:
            feats_ref = extract_features(net, test.x)
            mu, sigma = gaussian_stats(feats_ref)
            ref = {"features": feats_ref, "mu": mu, "sigma": sigma}
        k_mean, k_std = kid(ref["features"], feats, subset_size=min(1000, len(feats), len(ref["features"])), seed=ec.seed)
        out = {"fid": fid_from_stats(feats, ref["mu"], ref["sigma"]), "kid": k_mean, "kid_std": k_std}
        out["precision"], out["recall"] = precision_recall(ref["features"], feats, k=3)
        out["density"], out["coverage"] = density_coverage(ref["features"], feats, k=5)
        out["seconds_per_sample"] = sec
        conv = {
            "features": name,
            "features_sha256": net_hash(net),
            "n_samples": ec.n_samples,
            "reference": f"{cfg.data.name}/{ec.split}",
            "n_reference": len(ref["features"]),
            "fid": "pytorch-fid algorithm, float64",
            "kid": "unbiased, cubic polynomial kernel",
            "precision_recall_k": 3,
            "density_coverage_k": 5,
            "seed": ec.seed,
        }
        if hasattr(net, "classify"):
            out.update(self._class_metrics(model, net, x, y, feats, ref["features"], test))
        return out, conv

    @staticmethod
    def _class_metrics(
        model: Any, net: Any, x: torch.Tensor, y: torch.Tensor | None, feats: np.ndarray, ref: np.ndarray, test: Any
    ) -> dict:
        """The Inception-Score analogue; for labelled samples the classifier's accuracy and per-class accuracy and FID."""
        logits = extract_logits(net, x)
        out: dict[str, Any] = {"inception_score_analogue": inception_score_analogue(logits)[0]}
        if y is None:
            return out
        pred, yy = logits.argmax(1), y.numpy()
        out["accuracy"] = float((pred == yy).mean())
        names = model.spec.class_names or tuple(str(i) for i in range(model.spec.num_classes))
        per = []
        for c in range(model.spec.num_classes):
            mine, real = feats[yy == c], ref[test.y[: len(ref)].numpy() == c]
            row = {"label": c, "name": names[c] if c < len(names) else str(c), "n": int(len(mine))}
            row["accuracy"] = float((pred[yy == c] == c).mean()) if len(mine) else float("nan")
            if len(mine) > 1 and len(real) > 1:
                row["fid"] = fid(real, mine)
            per.append(row)
        out["per_class"] = per
        return out
