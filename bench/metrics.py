"""Benchmark: cost and sanity of genlab's sample-quality metrics on Fashion-MNIST.

Times FID, KID, precision/recall and density/coverage on 10,000 x 10,000 feature sets, and scores
sanity sets against the test split with genlab's Fashion-MNIST feature network: the train split
(near 0), then Gaussian-noised, blurred and pixel-shuffled test images (worse), and uniform
noise (worst). The order of the rows is the check.

    python bench/metrics.py                # table on stdout, JSON in bench/results/metrics.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 255).round().to(torch.uint8)


def sanity_sets(train: torch.Tensor, test: torch.Tensor, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Image sets (uint8 N x 1 x 28 x 28) from good to bad."""
    g = torch.Generator().manual_seed(seed)
    t = test[:n].float()
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 256).view(1, 1, 5, 5)
    perm = torch.randperm(28 * 28, generator=g)
    return {
        "train split": train[:n],
        "test + noise (std 25)": _uint8(t + 25 * torch.randn(t.shape, generator=g)),
        "test + blur (5x5 binomial)": _uint8(F.conv2d(t, kernel, padding=2)),
        "test + noise (std 75)": _uint8(t + 75 * torch.randn(t.shape, generator=g)),
        "pixel-shuffled test": test[:n].flatten(1)[:, perm].view_as(test[:n]),
        "uniform noise": torch.randint(0, 256, t.shape, generator=g, dtype=torch.uint8),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="images per set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "metrics.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from genlab.config import DataConfig
    from genlab.data import load_dataset
    from genlab.metrics import density_coverage, fid, kid, precision_recall
    from genlab.metrics.feature_nets import extract_features, get_feature_net

    train, _ = load_dataset(DataConfig(name="fashion_mnist"), "train")
    test, _ = load_dataset(DataConfig(name="fashion_mnist"), "test")
    net = get_feature_net("fashion_mnist")
    ref = extract_features(net, test.x[: a.n])
    rows, timings = [], {}
    for name, images in sanity_sets(train.x, test.x, a.n).items():
        t0 = time.perf_counter()
        feats = extract_features(net, images)
        timings.setdefault("features", time.perf_counter() - t0)
        row = {"set": name}
        for metric, fn in [
            ("fid", lambda f: fid(ref, f)),
            ("kid", lambda f: kid(ref, f)[0]),
            ("precision_recall", lambda f: precision_recall(ref, f, k=3)),
            ("density_coverage", lambda f: density_coverage(ref, f, k=5)),
        ]:
            t0 = time.perf_counter()
            value = fn(feats)
            timings.setdefault(metric, time.perf_counter() - t0)
            if isinstance(value, tuple):
                a_, b_ = metric.split("_")
                row[a_], row[b_] = value
            else:
                row[metric] = value
        rows.append(row)
        print(json.dumps(row), flush=True)

    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    meta = {"n": a.n, "threads": a.threads, "torch": torch.__version__, "features": "genlab fashion_mnist", "command": " ".join(sys.argv)}
    Path(a.out).write_text(json.dumps({"meta": meta, "seconds": timings, "rows": rows}, indent=2) + "\n")
    print(f"\nseconds for {a.n} x {a.n}: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
    print("\n| set (vs test) | FID | KID | precision | recall | density | coverage |\n| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['set']} | {r['fid']:.2f} | {r['kid']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['density']:.3f} | {r['coverage']:.3f} |"
        )
    print(f"\n-> {a.out}")


if __name__ == "__main__":
    main()
