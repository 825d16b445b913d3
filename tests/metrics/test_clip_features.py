"""The in-house clip networks behind `fd_clip`: direction labels by hand, the weights' hash check, the shipped nets'
accuracies as recorded, and that fd_clip sees motion: real clips are far closer to other real clips than the same
clips with their frames shuffled in time."""

import json

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import checkpoint as ckpt
from genlab import registry
from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.errors import CheckpointError
from genlab.metrics.clip_features import (
    ClipNet,
    all_directions,
    clip_features,
    direction_labels,
    load_clip_net,
    multi_hot,
    set_accuracy,
)
from genlab.metrics.feature_nets import WEIGHTS_DIR, file_sha256
from genlab.metrics.fid import fid


def test_direction_labels_by_hand():
    v = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0], [-1.0, 0.9]])  # (row, column)
    velocities = v[:, None, None, :].expand(6, 3, 1, 2)
    assert direction_labels(velocities).tolist() == [0, 1, 2, 4, 6, 7]  # right, down-right, down, left, up, up-right


def test_targets_for_clips_of_several_objects_by_hand():
    labels = torch.tensor([[3, 7], [5, 5]])  # two objects; the second clip's are both 5s
    assert multi_hot(labels, 10).tolist() == [[0, 0, 0, 1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]]
    v = torch.zeros(2, 3, 2, 2)
    v[:, 0, 0] = torch.tensor([0.0, 1.0])  # right
    v[:, 0, 1] = torch.tensor([-1.0, 0.0])  # up
    assert all_directions(v).tolist() == [[0, 6], [0, 6]]
    assert torch.equal(all_directions(v)[:, 0], direction_labels(v))  # the first object's, as for one object
    logits = torch.tensor([[0.0, 2.0, 1.0, -1.0], [3.0, 0.0, 2.0, 0.0], [0.0, 0.0, 5.0, 0.0]])
    target = torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    assert set_accuracy(logits, target) == pytest.approx(2 / 3)  # the second row's top two are {0, 2}, not {0, 1}


def test_pooled_net_reads_the_block_averaged_frames():
    """pool = 2: the same weights on 64 x 64 clips give what pool = 1 gives on the clips averaged over 2 x 2 blocks."""
    torch.manual_seed(0)
    pooled, plain = ClipNet(pool=2).eval(), ClipNet().eval()
    plain.load_state_dict(pooled.state_dict())
    x = torch.rand(3, 6, 1, 64, 64) * 2 - 1
    small = x.reshape(3, 6, 1, 32, 2, 32, 2).mean((4, 6))
    with torch.no_grad():
        assert torch.allclose(pooled.features(x), plain.features(small), atol=1e-5)
    with pytest.raises(ValueError, match="pool must be >= 1"):
        ClipNet(pool=0)


def test_hash_check(tmp_path):
    net = ClipNet(num_classes=3, feature_dim=8)
    path = tmp_path / "clip_toy.safetensors"
    ckpt.save_weights(path, net, {})
    info = {"num_classes": 3, "channels": 1, "feature_dim": 8, "command": "x", "sha256": file_sha256(path)}
    (tmp_path / "clip_toy.json").write_text(json.dumps(info))
    loaded = load_clip_net("toy", tmp_path)
    assert loaded.weights_sha256 == info["sha256"] and not loaded.training
    x = torch.rand(2, 4, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(loaded.features(x), net.eval().features(x))
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_clip_net("toy", tmp_path)


@pytest.mark.parametrize("dataset", ["moving_mnist_cpu", "moving_fmnist_cpu"])
def test_shipped_net_matches_its_record_and_sees_motion(dataset):
    info = json.loads((WEIGHTS_DIR / f"clip_{dataset}.json").read_text())
    net = registry.features(registry.features_for_dataset(dataset))()
    test, _ = load_dataset(DataConfig(name=dataset, n_test=600), "test")
    x = test.x.float() / 127.5 - 1
    with torch.no_grad():
        acc = float((net.classify(x[:400]).argmax(1) == test.y[:400]).float().mean())
    assert abs(acc - info["test_class_accuracy"]) < 0.08  # 400 of the 2,000 clips the record was measured on
    a, b = clip_features(net, x[:300]), clip_features(net, x[300:])
    shuffled = x[300:, torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))]
    real_vs_real, real_vs_shuffled = fid(a, b), fid(a, clip_features(net, shuffled))
    assert np.isfinite(real_vs_real) and real_vs_shuffled > 3 * real_vs_real


@pytest.mark.parametrize("dataset", ["moving_mnist", "moving_fmnist"])
def test_standard_protocol_net_matches_its_record_and_sees_motion(dataset):
    """Two digits (garments) at 64 x 64: the set accuracies as recorded, and real clips far closer to real clips than to
    the same clips shuffled in time."""
    info = json.loads((WEIGHTS_DIR / f"clip_{dataset}.json").read_text())
    net = registry.features(registry.features_for_dataset(dataset))()
    test, _ = load_dataset(DataConfig(name=dataset, n_test=400), "test")
    x = test.x.float() / 127.5 - 1
    y = multi_hot(torch.as_tensor(test.labels), test.spec.num_classes)
    with torch.no_grad():
        acc = set_accuracy(net.classify(x[:300]), y[:300])
    assert abs(acc - info["test_class_accuracy"]) < 0.1  # 300 of the 2,000 clips the record was measured on
    a, b = clip_features(net, x[:200]), clip_features(net, x[200:])
    shuffled = x[200:, torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))]
    assert fid(a, clip_features(net, shuffled)) > 3 * fid(a, b)
