"""Train genlab's in-house clip network (genlab.metrics.clip_features.ClipNet) for a Moving MNIST / Fashion-MNIST
dataset, reproducibly: fixed seed, one CPU thread, a seeded data order. Two heads on one feature space: the object's
class and its initial direction of motion (8 sectors), by cross-entropy for clips of one object; for clips of K > 1
objects (the standard protocol's two) the set of classes and the set of directions present, by binary cross-entropy
on multi-hot targets (which object is "the first" is nothing a clip shows), with set accuracies. Writes
<out>/clip_<dataset>.safetensors and a JSON sidecar (test accuracies, seed, command, SHA-256).

    python scripts/train_clip_net.py --dataset moving_mnist_cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab import checkpoint as ckpt
from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.transforms import to_unit_range
from genlab.metrics.clip_features import DIRECTIONS, ClipNet, all_directions, direction_labels, multi_hot, set_accuracy
from genlab.metrics.feature_nets import file_sha256

BATCH_SIZE = 64
LR = 2e-3
WEIGHT_DECAY = 0.01


@torch.no_grad()
def accuracies(net: ClipNet, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, batch_size: int = 250) -> tuple[float, float]:
    """(class accuracy, direction accuracy) on uint8 clips x; with multi-hot targets y, d (several objects) the share of
    clips whose predicted sets are exactly right."""
    net.eval()
    cls = dirs = 0.0
    for i in range(0, len(x), batch_size):
        f = net.features(to_unit_range(x[i : i + batch_size]))
        yc, dc = net.classifier(f), net.directions(f)
        yt, dt = y[i : i + batch_size], d[i : i + batch_size]
        if yt.ndim == 2:
            cls += set_accuracy(yc, yt) * len(yt)
            dirs += set_accuracy(dc, dt) * len(dt)
        else:
            cls += int((yc.argmax(1) == yt).sum())
            dirs += int((dc.argmax(1) == dt).sum())
    return cls / len(x), dirs / len(x)


def targets(ds) -> tuple[torch.Tensor, torch.Tensor]:
    """The class and direction targets of a video dataset: indices for one object, multi-hot sets for several."""
    velocities = torch.from_numpy(ds.velocities)
    if velocities.shape[2] == 1:
        return ds.y, direction_labels(velocities)
    return multi_hot(torch.as_tensor(ds.labels), ds.spec.num_classes), multi_hot(all_directions(velocities), DIRECTIONS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="moving_mnist_cpu")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=10_000)
    p.add_argument("--n-test", type=int, default=None, help="test clips for the accuracies (a prefix of the fixed test set); default all")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pool", type=int, default=None, help="average the frames over pool x pool blocks first (default: H // 32, at least 1)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src" / "genlab" / "weights"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train, _ = load_dataset(DataConfig(name=a.dataset, n_train=a.n_train), "train")
    test, _ = load_dataset(DataConfig(name=a.dataset, n_test=a.n_test), "test")
    (y_train, d_train), (y_test, d_test) = targets(train), targets(test)
    loss_fn = F.binary_cross_entropy_with_logits if y_train.ndim == 2 else F.cross_entropy
    T, C, H, W = train.spec.shape
    pool = a.pool if a.pool is not None else max(1, H // 32)
    net = ClipNet(num_classes=train.spec.num_classes, channels=C, pool=pool)
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = a.epochs * (len(train) // BATCH_SIZE)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    g = torch.Generator().manual_seed(a.seed)
    start = time.perf_counter()
    for epoch in range(a.epochs):
        net.train()
        order = torch.randperm(len(train), generator=g)
        for i in range(len(train) // BATCH_SIZE):
            idx = order[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]
            f = net.features(to_unit_range(train.x[idx]))
            loss = loss_fn(net.classifier(f), y_train[idx]) + loss_fn(net.directions(f), d_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracies(net, test.x[:1000], y_test[:1000], d_test[:1000])
        print(f"epoch {epoch + 1}/{a.epochs}: loss {loss.item():.3f}, test class {acc[0]:.3f}, direction {acc[1]:.3f}", file=sys.stderr)
    seconds = time.perf_counter() - start
    cls, dirs = accuracies(net, test.x, y_test, d_test)
    out = Path(a.out)
    path = out / f"clip_{a.dataset}.safetensors"
    ckpt.save_weights(path, net.eval(), {"dataset": a.dataset})
    info = {
        "dataset": a.dataset,
        "test_class_accuracy": round(cls, 4),
        "test_direction_accuracy": round(dirs, 4),
        "n_train": len(train),
        "n_test": len(test),
        "epochs": a.epochs,
        "seed": a.seed,
        "threads": a.threads,
        "parameters": sum(p.numel() for p in net.parameters()),
        "num_classes": train.spec.num_classes,
        "channels": C,
        "feature_dim": net.feature_dim,
        "pool": pool,
        "torch": torch.__version__,
        "command": f"python scripts/train_clip_net.py --dataset {a.dataset} --epochs {a.epochs} --n-train {a.n_train} --seed {a.seed} "
        f"--threads {a.threads} --pool {pool}" + (f" --n-test {a.n_test}" if a.n_test else "") + " --out src/genlab/weights",
        "train_seconds": round(seconds),
        "sha256": file_sha256(path),
    }
    (out / f"clip_{a.dataset}.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
