"""`genlab eval`: a run's likelihood (exact) or bound on its test split under genlab's one
convention (genlab.metrics.likelihood), and the quality of its samples — FID, KID, precision,
recall, density, coverage on a feature network's features (images), MMD and the NLL under the
true density (2D toys) — written to eval.json with every convention next to the numbers."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genlab.config import RunConfig, build_run_config
from genlab.data import iterate, load_dataset
from genlab.errors import CheckpointError, DataError, GenlabError
from genlab.train import checkpoint as ckpt
from genlab.train import rundir

STABLE_SAMPLES = 2000  # fewer samples than this give FID/KID/PR values too noisy to compare


@torch.no_grad()
def per_example_nll(
    model: Any, ds: Any, transform: Any, *, k: int, batch_size: int, limit: int | None, seed: int = 0, progress: bool = True
) -> torch.Tensor:
    """NLL (nats) of each test example: exact, or the bound with k importance samples."""
    from tqdm.auto import tqdm

    n = len(ds) if limit is None else min(limit, len(ds))
    out = []
    # Forked (and seeded) RNG: evaluating never moves a training run's random stream.
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(seed)
        bar = tqdm(total=n, unit="ex", disable=not progress, desc=f"nll k={k}", leave=False)
        for batch in iterate(ds, transform, batch_size, seed=seed, limit=n):
            x = batch["x"].to(model.device)
            y = batch["y"].to(model.device) if model.conditional else None
            out.append(model.nll(x, y, k=k).double().cpu())
            bar.update(len(x))
        bar.close()
    return torch.cat(out)


def likelihood_metrics(model: Any, cfg: RunConfig, ds: Any, transform: Any, progress: bool) -> dict[str, Any]:
    """Exact NLL, or the ELBO and the IWAE-k bound for importance-weighted models, in nats and bits/dim."""
    from genlab.metrics.likelihood import likelihood_report

    ec, out = cfg.eval, {}
    t0 = time.perf_counter()
    kw = {"batch_size": ec.batch_size, "limit": ec.n_examples, "seed": ec.seed, "progress": progress}
    if model.likelihood == "bound" and model.importance_weighted:
        out["elbo"] = likelihood_report(per_example_nll(model, ds, transform, k=1, **kw), model.spec, exact=False, bound_name="ELBO")
        kw["batch_size"] = max(1, ec.batch_size // 4)
        nll, bound = per_example_nll(model, ds, transform, k=ec.iwae_k, **kw), f"IWAE-{ec.iwae_k}"
    else:
        nll, bound = per_example_nll(model, ds, transform, k=1, **kw), model.bound_name or "bound"
    out.update(likelihood_report(nll, model.spec, exact=model.likelihood == "exact", bound_name=bound))
    out["seconds_likelihood"] = round(time.perf_counter() - t0, 2)
    return out


def _draw(model: Any, n: int, seed: int, sample_kwargs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None, float]:
    from genlab.api import sample

    t0 = time.perf_counter()
    x, y = sample(model, n, seed=seed, device=model.device, **(sample_kwargs or {}))
    return x, y, (time.perf_counter() - t0) / n


def feature_net_name(cfg: RunConfig, spec: Any) -> str:
    """eval.features, else the dataset's own feature network, else torch-fidelity's Inception for RGB."""
    from genlab import registry

    if cfg.eval.features is not None:
        registry.features(cfg.eval.features)  # a clear error for an unknown name
        return cfg.eval.features
    if cfg.data.name in registry.list_features():
        return cfg.data.name
    if spec.shape[0] == 3:
        return "inception"
    raise DataError(f"no feature network for {cfg.data.name!r} images; set eval.features (genlab list) or eval.sample_metrics=false")


def image_metrics(model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """FID, KID, precision/recall, density/coverage against the test split; accuracy and per-class FID
    for class-conditional models. Returns (numbers, conventions)."""
    from genlab.metrics import density_coverage, kid, precision_recall
    from genlab.metrics.feature_nets import extract_features, extract_logits, get_feature_net, inception_score_analogue, reference_stats
    from genlab.metrics.feature_nets import weights_sha256 as net_hash
    from genlab.metrics.fid import fid, fid_from_stats

    ec = cfg.eval
    name = feature_net_name(cfg, model.spec)
    net = get_feature_net(name)
    x, y, sec = _draw(model, ec.n_samples, ec.seed, sample_kwargs)
    ref_shape = tuple(test.x.shape[1:])
    if x.shape[1] != ref_shape[0]:
        raise DataError(f"samples have shape {tuple(x.shape[1:])} but the reference images {ref_shape}: channels differ")
    if ec.n_samples < STABLE_SAMPLES:
        warnings.warn(f"eval.n_samples={ec.n_samples}: FID/KID/precision/recall need at least {STABLE_SAMPLES} samples to be stable")
    try:
        feats = extract_features(net, x)
    except ValueError as e:
        raise DataError(f"samples of shape {tuple(x.shape[1:])} do not fit the feature network {name!r}: {e}") from None
    ref_name = cfg.data.name if cfg.data.name in ("fashion_mnist", "mnist") else None
    if ref_name is not None:
        ref = reference_stats(ref_name, ec.split, name)
    else:
        from genlab.metrics.fid import gaussian_stats

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
        logits = extract_logits(net, x)
        out["inception_score_analogue"], _ = inception_score_analogue(logits)
        if y is not None:
            pred = logits.argmax(1)
            out["accuracy"] = float((pred == y.numpy()).mean())
            names = model.spec.class_names or tuple(str(i) for i in range(model.spec.num_classes))
            per = []
            for c in range(model.spec.num_classes):
                mine, real = feats[y.numpy() == c], ref["features"][test.y[: len(ref["features"])].numpy() == c]
                row = {"label": c, "name": names[c] if c < len(names) else str(c), "n": int(len(mine))}
                row["accuracy"] = float((pred[y.numpy() == c] == c).mean()) if len(mine) else float("nan")
                if len(mine) > 1 and len(real) > 1:
                    row["fid"] = fid(real, mine)
                per.append(row)
            out["per_class"] = per
    return out, conv


def toy_metrics(model: Any, cfg: RunConfig, test: Any, sample_kwargs: dict | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """MMD to the test points, and the NLL of the samples under the true density (2D toys)."""
    from genlab.data.toy2d import TOY_NAMES, toy_distribution
    from genlab.metrics import mmd
    from genlab.metrics.toy import nll_under

    ec = cfg.eval
    x, _, sec = _draw(model, ec.n_samples, ec.seed, sample_kwargs)
    m = min(2000, len(x), len(test.x))
    out: dict[str, Any] = {"mmd": float(mmd(test.x[:m].double(), x[:m].double())), "seconds_per_sample": sec}
    conv = {"n_samples": ec.n_samples, "mmd": f"unbiased MMD^2, Gaussian kernels, {m} vs {m} points"}
    if cfg.data.name in TOY_NAMES:
        dist = toy_distribution(cfg.data.name)
        out["true_nll"] = dist.entropy()
        out["samples_true_nll"] = float(nll_under(dist.log_prob, x.double()))
        conv["true_nll"] = "entropy of the true density (nats); nll - true_nll is the KL gap"
    from genlab.metrics.modes import MIXTURES, N_SAMPLES, mixture_coverage

    if cfg.data.name in MIXTURES and len(x) >= N_SAMPLES:
        out.update(mixture_coverage(x[:N_SAMPLES], cfg.data.name))
        conv["modes"] = f"first {N_SAMPLES} samples; high_quality: within 3 std of a mode; a mode is covered by >= 1 of them"
    return out, conv


def evaluate_run(
    run_dir: Path,
    overrides: list[str] | dict | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
    sample_kwargs: dict | None = None,
) -> dict[str, Any]:
    """Likelihood and sample-quality metrics of a run -> eval.json; `sample_kwargs` go to `model.sample`
    (a diffusion model's sampler and steps, a GAN's truncation, ...) and are written beside the numbers."""
    from genlab.api import load

    if not (run_dir / rundir.WEIGHTS).is_file():
        raise CheckpointError(f"{run_dir} has no checkpoint ({rundir.WEIGHTS}); train it first with `genlab train`")
    model = load(run_dir, device=device)
    if isinstance(overrides, list):
        overrides = [k if k.startswith("eval.") else f"eval.{k}" for k in overrides]
    cfg = build_run_config(model.run_config, overrides)
    ec = cfg.eval
    ds, transform = load_dataset(cfg.data, ec.split)
    result: dict[str, Any] = {"run": str(run_dir), "model": cfg.model.name, "family": model.family, "step": model.trained_steps}
    conventions: dict[str, Any] = {
        "split": ec.split,
        "n_examples": min(len(ds), ec.n_examples or len(ds)),
        "weights": "ema" if (run_dir / rundir.EMA_WEIGHTS).is_file() else "model",
    }
    if model.likelihood != "none":
        result.update(likelihood_metrics(model, cfg, ds, transform, progress))
        conventions["likelihood"] = result.get("convention")
    if ec.sample_metrics:
        try:
            with torch.random.fork_rng(devices=[]):
                quality, conv = (image_metrics if model.spec.is_image else toy_metrics)(model, cfg, ds, sample_kwargs)
                if sample_kwargs:
                    conv["sampler"] = dict(sample_kwargs)
        except GenlabError as e:
            if cfg.eval.features is not None:
                raise
            warnings.warn(f"sample metrics skipped: {e}")
            quality, conv = {}, {"skipped": str(e)}
        result.update(quality)
        conventions["samples"] = conv
        if "true_nll" in result and "nll" in result:
            result["kl_gap"] = result["nll"] - result["true_nll"]
    result["conventions"] = conventions
    ckpt.atomic_write_text(run_dir / "eval.json", json.dumps(_plain(result), indent=2) + "\n")
    return result


def _plain(x: Any) -> Any:
    """numpy scalars -> Python numbers, for JSON."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
