"""genlab's in-house clip feature networks for the video metrics: a small 3-D convolutional classifier of Moving
MNIST / Fashion-MNIST clips, trained on the object's identity and its direction of motion (scripts/train_clip_net.py),
whose penultimate layer is the feature space of `fd_clip`, a Fréchet distance between sets of clips. Like FVD (Unterthiner
et al. 2019) in spirit, not in numbers: no I3D weights can be had offline, so the values are comparable only with
other genlab runs on the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from genlab.metrics.feature_nets import WEIGHTS_DIR, load_checked_weights
from genlab.registry import register_features

TRAIN_SCRIPT = "scripts/train_clip_net.py"
DIRECTIONS = 8  # motion direction classes: the initial velocity's angle in 8 sectors of 45 degrees


class ClipNet(nn.Module):
    """Clips (N, T, C, H, W) in [-1, 1] -> features (N, feature_dim); heads for the object's class and the direction.

    With pool > 1 the frames are first averaged over pool x pool pixel blocks (64 x 64 clips read at 32 x 32: a fifth of
    the cost, digits still 14 px tall). Conv3d(3x3x3) blocks with BatchNorm and ReLU: widths[0] at that resolution
    then a 1 x 2 x 2 max-pool (space), widths[1] then a 2 x 2 x 2 max-pool (time and space), widths[2], an adaptive
    average pool to 2 x 4 x 4, then linear(feature_dim), BatchNorm, ReLU = `features(x)`; `classify(x)` gives the
    class logits and `direction(x)` the motion-direction logits from the same features.

    >>> net = ClipNet().eval()
    >>> net.features(torch.zeros(2, 16, 1, 32, 32)).shape, net.classify(torch.zeros(2, 16, 1, 32, 32)).shape
    (torch.Size([2, 64]), torch.Size([2, 10]))
    """

    def __init__(
        self, num_classes: int = 10, channels: int = 1, widths: tuple[int, int, int] = (8, 16, 32), feature_dim: int = 64, pool: int = 1
    ):
        super().__init__()
        if pool < 1:
            raise ValueError(f"ClipNet: pool must be >= 1, got {pool}")
        w1, w2, w3 = widths

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(channels, w1), nn.MaxPool3d((1, 2, 2)), *block(w1, w2), nn.MaxPool3d(2), *block(w2, w3),
            nn.AdaptiveAvgPool3d((2, 4, 4)), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Linear(w3 * 32, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.directions = nn.Linear(feature_dim, DIRECTIONS)
        self.channels, self.feature_dim, self.pool = channels, feature_dim, pool
        self.weights_sha256: str | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != self.channels:
            raise ValueError(f"ClipNet expects clips (N, T, {self.channels}, H, W) in [-1, 1]; got shape {tuple(x.shape)}")
        x = x.float().transpose(1, 2)  # (N, C, T, H, W)
        if self.pool > 1:
            x = nn.functional.avg_pool3d(x, (1, self.pool, self.pool))
        return self.head(self.body(x))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def direction(self, x: torch.Tensor) -> torch.Tensor:
        return self.directions(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(x)


def direction_labels(velocities: torch.Tensor) -> torch.Tensor:
    """The direction class of each clip's first object at frame 0: its velocity (row, column) as an angle, in 8
    sectors of 45 degrees centred on right (0), down-right (1), down (2), ... (velocities (N, T, K, 2))."""
    return all_directions(velocities)[:, 0]


def multi_hot(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, K) class indices -> (N, num_classes) float multi-hot: 1 for every class present in the row (a class held by
    two objects counts once). The targets of a clip network for clips of K > 1 objects, where "the first object" is
    not something the clip shows."""
    out = torch.zeros(len(classes), num_classes)
    return out.scatter_(1, classes.long(), 1.0)


def all_directions(velocities: torch.Tensor) -> torch.Tensor:
    """The direction sector of every object at frame 0, as `direction_labels` describes: (N, T, K, 2) -> (N, K)."""
    v = velocities[:, 0]
    angle = torch.atan2(v[..., 0], v[..., 1])  # rows grow downwards
    return torch.round(angle / (2 * torch.pi / DIRECTIONS)).long() % DIRECTIONS


def set_accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Share of rows whose top-m logits (m = the row's number of 1s in the multi-hot `target`) are exactly its set."""
    hits = 0
    for row, t in zip(logits, target):
        m = int(t.sum())
        hits += int(set(row.topk(m).indices.tolist()) == set(t.nonzero().flatten().tolist()))
    return hits / max(1, len(logits))


def load_clip_net(dataset: str, weights_dir: str | Path | None = None) -> ClipNet:
    """The shipped clip network of `dataset` (`clip_<dataset>.safetensors`), hash-checked against its sidecar."""
    folder = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    return load_checked_weights(
        f"clip_{dataset}",
        folder / f"clip_{dataset}.safetensors",
        folder / f"clip_{dataset}.json",
        lambda info: ClipNet(
            num_classes=info["num_classes"], channels=info["channels"], feature_dim=info["feature_dim"], pool=info.get("pool", 1)
        ),
        f"python {TRAIN_SCRIPT} --dataset {dataset} --out {folder}",
    )


@register_features("clip_moving_mnist_cpu", datasets=("moving_mnist_cpu",))
def clip_moving_mnist_cpu() -> ClipNet:
    """genlab's in-house clip network for Moving MNIST at CPU size (32 x 32, 16 frames)."""
    return load_clip_net("moving_mnist_cpu")


@register_features("clip_moving_fmnist_cpu", datasets=("moving_fmnist_cpu",))
def clip_moving_fmnist_cpu() -> ClipNet:
    """genlab's in-house clip network for Moving Fashion-MNIST at CPU size (32 x 32, 16 frames)."""
    return load_clip_net("moving_fmnist_cpu")


@register_features("clip_moving_mnist", datasets=("moving_mnist",))
def clip_moving_mnist() -> ClipNet:
    """genlab's in-house clip network for Moving MNIST on the standard protocol (64 x 64, two digits, 20 frames): the set
    of classes and the set of directions in the clip, read at 32 x 32."""
    return load_clip_net("moving_mnist")


@register_features("clip_moving_fmnist", datasets=("moving_fmnist",))
def clip_moving_fmnist() -> ClipNet:
    """genlab's in-house clip network for Moving Fashion-MNIST on the standard protocol (64 x 64, two garments, 20
    frames): the set of classes and the set of directions in the clip, read at 32 x 32."""
    return load_clip_net("moving_fmnist")


@torch.no_grad()
def clip_features(net: nn.Module, clips: torch.Tensor, batch_size: int = 250) -> np.ndarray:
    """Features (N, feature_dim) float64 of clips (N, T, C, H, W) in [-1, 1] (or uint8), in batches, in eval mode."""
    net.eval()
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(clips), batch_size):
        x = clips[i : i + batch_size]
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
        out.append(net.features(x.to(device)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, getattr(net, "feature_dim", 0)))
