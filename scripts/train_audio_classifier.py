"""Train genlab's shipped audio classifier (genlab.metrics.audio.AudioClassifier) on the training speakers of
spoken_digits (8 kHz) or the training instruments of notes, reproducibly: fixed seed, a seeded data order and
augmentation (time shift, gain, noise). Reports the accuracy on the held-out test speakers / instruments and writes
<out>/<dataset>_classifier.safetensors with a JSON sidecar (architecture, accuracies, seed, command, SHA-256).

    flock /tmp/genlab-heavy.lock python scripts/train_audio_classifier.py --dataset spoken_digits
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genlab import checkpoint as ckpt
from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.audio import data_home
from genlab.metrics.audio import AudioClassifier, accuracy, classifier_outputs
from genlab.metrics.feature_nets import file_sha256

# dataset -> (registered data set it trains on, epochs, classifier front end)
RECIPES = {
    "spoken_digits": ("spoken_digits_8k", 8, {"sample_rate": 8000, "length": 8000, "n_fft": 256, "hop": 128, "n_mels": 40}),
    "notes": ("notes", 15, {"sample_rate": 16000, "length": 16000, "n_fft": 2048, "hop": 512, "n_mels": 80, "fmax": 3000.0}),
}
BATCH_SIZE = 128
LR = 3e-3
WEIGHT_DECAY = 0.05
MAX_SHIFT = 0.1  # seconds


def augment(x: torch.Tensor, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """Each clip shifted in time by up to ±MAX_SHIFT s (zero-filled), scaled by a gain in [0.3, 1] and given white noise
    30-60 dB below its peak: the classifier should judge the word, not its position, level or a little hiss."""
    n, _, T = x.shape
    s = int(MAX_SHIFT * sample_rate)
    padded = F.pad(x, (s, s))
    offs = torch.randint(0, 2 * s + 1, (n, 1), generator=g)
    x = padded[torch.arange(n)[:, None], 0, offs + torch.arange(T)][:, None]
    gain = 0.3 + 0.7 * torch.rand(n, 1, 1, generator=g)
    noise_db = 30 + 30 * torch.rand(n, 1, 1, generator=g)
    peak = x.abs().amax(-1, keepdim=True).clamp(min=1e-3)
    return (gain * (x + peak * 10 ** (-noise_db / 20) * torch.randn(x.shape, generator=g))).clamp(-1, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(RECIPES), required=True)
    p.add_argument("--epochs", type=int, default=None, help="passes over the training set (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--out", type=Path, default=Path("src/genlab/weights"), help="folder for the weights and their JSON sidecar")
    args = p.parse_args()
    data_name, default_epochs, front = RECIPES[args.dataset]
    epochs = args.epochs or default_epochs
    command = (
        f"python scripts/train_audio_classifier.py --dataset {args.dataset} --epochs {epochs} --seed {args.seed} --threads {args.threads}"
    )
    command += f" --out {args.out}"

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train, _ = load_dataset(DataConfig(name=data_name), "train")
    test, _ = load_dataset(DataConfig(name=data_name), "test")
    manifest = json.loads((data_home(args.dataset) / "manifest.json").read_text())  # which build it learnt from
    rate = front["sample_rate"]
    net = AudioClassifier(num_classes=train.spec.num_classes, **front)
    steps_per_epoch = len(train) // BATCH_SIZE
    opt = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    n_params = sum(q.numel() for q in net.parameters())
    print(f"{data_name}: {len(train)} train / {len(test)} test clips, {n_params} parameters, {epochs} epochs of {steps_per_epoch} steps")

    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(train), generator=g)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = perm[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
            loss = F.cross_entropy(net.classify(augment(train.x[idx], rate, g)), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            if not math.isfinite(total):
                raise SystemExit(f"non-finite loss at epoch {epoch}, step {step}")
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / steps_per_epoch:.4f}, {time.perf_counter() - t0:.0f}s", flush=True)
    seconds = time.perf_counter() - t0

    net.eval()
    test_acc = accuracy(classifier_outputs(net, test.x, test.sample_rate)[1], test.y)
    train_acc = accuracy(classifier_outputs(net, train.x, train.sample_rate)[1], train.y)
    per_speaker = {}
    logits = classifier_outputs(net, test.x, test.sample_rate)[1]
    for k, name in enumerate(test.speaker_names):
        if name.startswith(("asterisk", "flite")):  # the real recording and the non-espeak test voices, reported apart
            mine = test.speakers == k
            per_speaker[name] = round(accuracy(logits[mine], test.y[torch.from_numpy(mine)]), 4)
    print(f"test accuracy {test_acc:.4f} (held-out speakers), train accuracy {train_acc:.4f}, {per_speaker}, {seconds:.0f}s")
    info = {
        "dataset": args.dataset,
        "trained_on": data_name,
        "test_accuracy": round(test_acc, 4),
        "train_accuracy": round(train_acc, 4),
        "test_accuracy_by_speaker": per_speaker,
        "n_train": len(train),
        "n_test": len(test),
        "n_test_speakers": int(len(np.unique(test.speakers))),
        "epochs": epochs,
        "seed": args.seed,
        "threads": args.threads,
        "parameters": n_params,
        "architecture": net.config,
        "class_names": list(train.spec.class_names),
        "data_manifest": {k: manifest.get(k) for k in ("profile", "sha256", "tools", "soundfont")},
        "torch": torch.__version__,
        "command": command,
    }
    path = args.out / f"{args.dataset}_classifier.safetensors"
    ckpt.save_weights(path, net, {})  # metadata stays in the sidecar (safetensors' header order is not stable)
    info.update(train_seconds=round(seconds), sha256=file_sha256(path))
    ckpt.atomic_write_text(args.out / f"{args.dataset}_classifier.json", json.dumps(info, indent=2) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), sha256 {info['sha256']}")


if __name__ == "__main__":
    main()
