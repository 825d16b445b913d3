"""Feature networks: the shipped classifiers load hash-checked and work on real Fashion-MNIST, user modules
serve as feature networks, shapes are checked, reference statistics are cached, Inception is handed off."""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from torch import nn

from genlab import registry
from genlab.config import DataConfig
from genlab.data import load_dataset
from genlab.data.transforms import pad_to, to_unit_range
from genlab.errors import CheckpointError, DataError, GenlabError
from genlab.metrics import feature_nets as fm
from genlab.metrics import fid, gaussian_stats


@pytest.fixture(scope="module")
def fmnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1,000 Fashion-MNIST test images (uint8) and labels."""
    try:
        ds, _ = load_dataset(DataConfig(name="fashion_mnist", n_test=1000), "test")
    except DataError as e:
        pytest.skip(f"Fashion-MNIST files not available here (run scripts/get_data.sh): {e}")
    return ds.x, ds.y


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist"])
def test_shipped_nets_load_hash_checked(name: str) -> None:
    net = fm.get_feature_net(name)
    info = json.loads((fm.WEIGHTS_DIR / f"{name}_features.json").read_text())
    assert isinstance(net, fm.FeatureNet) and not net.training
    assert net.weights_sha256 == info["sha256"] == fm.file_sha256(fm.WEIGHTS_DIR / f"{name}_features.safetensors")
    assert (fm.WEIGHTS_DIR / f"{name}_features.safetensors").stat().st_size < 5e6
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    f, logits = net.features(x), net.classify(x)
    assert f.shape == (4, net.feature_dim) and f.dtype == torch.float32
    assert logits.shape == (4, 10)
    assert registry.features(name) in (fm.fashion_mnist_net, fm.mnist_net)


def test_hash_mismatch_or_missing_file_is_a_clear_error(tmp_path) -> None:
    for suffix in (".safetensors", ".json"):
        shutil.copy(fm.WEIGHTS_DIR / f"fashion_mnist_features{suffix}", tmp_path)
    weights = tmp_path / "fashion_mnist_features.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"SHA-256.*train_feature_net\.py --dataset fashion_mnist"):
        fm.load_shipped_net("fashion_mnist", tmp_path)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"missing.*train_feature_net\.py --dataset fashion_mnist"):
        fm.load_shipped_net("fashion_mnist", tmp_path)


def test_32x32_inputs_are_centre_cropped() -> None:
    net = fm.FeatureNet().eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(net.features(pad_to(x, 32)), net.features(x))


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 30, 30), (1, 28, 28)])
def test_bad_shapes_name_expected_and_received(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=rf"N x 1 x 28 x 28.*got shape {re.escape(str(shape))}"):
        fm.FeatureNet().features(torch.zeros(shape))


def test_extraction_takes_uint8_or_floats_in_batches() -> None:
    net = fm.FeatureNet().train()
    images = torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8)
    a = fm.extract_features(net, images.numpy(), batch_size=3)
    b = fm.extract_features(net, to_unit_range(images))
    assert a.dtype == np.float64 and a.shape == (7, 128)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert net.training  # extraction runs in eval mode and restores the mode
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        fm.extract_features(net, images.float())


def test_any_user_module_serves_as_feature_net() -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 7))
    feats = fm.extract_features(plain, torch.zeros(5, 1, 28, 28))
    assert feats.shape == (5, 7)
    with pytest.raises(ValueError, match="no .classify"):
        fm.classifier_accuracy(plain, torch.zeros(5, 1, 28, 28), torch.zeros(5))

    class WithHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

        def classify(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.flatten(1))

    net = WithHeads()
    assert fm.get_feature_net(net) is net
    x = torch.rand(6, 1, 2, 2) * 2 - 1
    expected = net.classify(x).argmax(1)
    assert fm.classifier_accuracy(net, x, expected) == 1.0
    assert fm.extract_features(net, x).shape == (6, 4)


def test_inception_score_analogue() -> None:
    assert fm.inception_score_analogue(torch.zeros(100, 10), splits=5) == pytest.approx((1.0, 0.0))
    confident = torch.eye(10).repeat(10, 1) * 1e4  # every class equally often, each image sure of its class
    assert fm.inception_score_analogue(confident, splits=10)[0] == pytest.approx(10.0)
    logits = np.random.default_rng(0).normal(size=(60, 5)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = [np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0))), 1))) for q in np.split(p, 3)]
    assert fm.inception_score_analogue(logits, splits=3) == pytest.approx((np.mean(scores), np.std(scores)))


def test_real_fashion_mnist_accuracy_and_fid(fmnist_test, tmp_path) -> None:
    x, y = fmnist_test
    net = fm.get_feature_net("fashion_mnist")
    assert fm.classifier_accuracy(net, x[:500], y[:500]) >= 0.9
    feats = fm.extract_features(net, x)
    noise = torch.randint(0, 256, (500, 1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    real_vs_real = fid(feats[:500], feats[500:])
    real_vs_noise = fid(feats[:500], fm.extract_features(net, noise))
    assert real_vs_real < real_vs_noise / 20

    stats = fm.reference_stats("fashion_mnist", "test", "fashion_mnist", n=500, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    assert path.name == f"fashion_mnist_test_fashion_mnist_{net.weights_sha256[:12]}_500.npz"
    np.testing.assert_allclose(stats["mu"], gaussian_stats(feats[:500])[0], rtol=1e-5, atol=1e-6)


class TinyNet(nn.Module):
    """A stand-in feature network for the 8 x 8 test images."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 4)
        self.norm = nn.BatchNorm1d(4)  # a 0-d buffer (num_batches_tracked) in the hashed state dict

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.lin(x.flatten(1)))


def test_reference_stats_cached_once_and_keyed_by_weights(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    net = TinyNet()
    monkeypatch.setitem(registry._FEATURES, "tiny", lambda: net)
    calls = []
    extract = fm.extract_features
    monkeypatch.setattr(fm, "extract_features", lambda *a, **k: calls.append(1) or extract(*a, **k))

    first = fm.reference_stats("test_images", "test", "tiny", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    mtime = path.stat().st_mtime_ns
    second = fm.reference_stats("test_images", "test", "tiny", cache_dir=tmp_path)
    assert len(calls) == 1 and path.stat().st_mtime_ns == mtime
    assert first["features"].shape == (128, 4) and first["sigma"].shape == (4, 4)
    for k in ("features", "mu", "sigma"):
        np.testing.assert_array_equal(first[k], second[k])

    with torch.no_grad():
        net.lin.weight.add_(1.0)  # new weights -> new hash -> new key, never the stale file
    fm.reference_stats("test_images", "test", "tiny", cache_dir=tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("*.npz"))) == 2

    monkeypatch.setenv("GENLAB_CACHE", str(tmp_path / "env"))
    fm.reference_stats("test_images", "test", "tiny", n=16)
    assert [p.name.rsplit("_", 1)[1] for p in (tmp_path / "env" / "reference").glob("*.npz")] == ["16.npz"]


def test_inception_handoff_without_torchvision_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as here: torchvision does not import beside this torch
    with pytest.raises(GenlabError, match=r"pip install genlab\[fidelity\].*torchvision"):
        fm.get_feature_net("inception")


def test_inception_wrapper_hands_torch_fidelity_uint8_rgb() -> None:
    seen = []

    def extractor(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(x)
        return x.flatten(1).float(), x.float().mean((2, 3))

    net = fm.InceptionFeatures(extractor)
    assert net.features(torch.full((2, 1, 5, 5), 1.0)).shape == (2, 75)
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (2, 3, 5, 5) and int(seen[0].min()) == 255
    with pytest.raises(ValueError, match=r"N x 3 x H x W.*\(2, 2, 5, 5\)"):
        net.classify(torch.zeros(2, 2, 5, 5))


def test_public_entry_point_is_genlab_metrics_features():
    import genlab.metrics

    net = genlab.metrics.features("fashion_mnist")
    x = torch.zeros(2, 1, 28, 28)
    assert net.features(x).shape == (2, 128) and net.classify(x).shape == (2, 10)
