"""Moving MNIST / Fashion-MNIST: the generator's physics (constant speed, reflection), rendering, determinism."""

import numpy as np
import pytest
import torch

from genlab.config import DataConfig
from genlab.data.base import BatchTransform, load_dataset
from genlab.data.video import bounce, moving_objects, read_clips
from genlab.errors import DataError
from genlab.spec import DataSpec


def _objects(m=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (m, 1, 28, 28), generator=g, dtype=torch.uint8), torch.arange(m) % 10


def test_bounce_hand_computed():
    # 1 -> -2 mirrored to 2 (v flips to +3) -> 5 -> 8 -> 11 mirrored to 9 (v flips to -3) -> 6
    p, v = bounce(np.array([1.0, 4.0]), np.array([-3.0, 0.0]), 6, 10.0)
    assert p[:, 0].tolist() == [1, 2, 5, 8, 9, 6]
    assert v[:, 0].tolist() == [-3, 3, 3, 3, -3, -3]
    assert p[:, 1].tolist() == [4] * 6


def test_constant_speed_and_reflection_at_the_borders():
    x, y = _objects()
    out = moving_objects(x, y, 50, image_size=32, n_objects=2, n_frames=30, seed=3)
    pos, vel = out["positions"], out["velocities"]
    limit = 32 - 14
    assert pos.min() >= 0 and pos.max() <= limit
    speed = np.linalg.norm(vel, axis=-1)
    np.testing.assert_allclose(speed, np.broadcast_to(speed[:, :1], speed.shape), rtol=1e-12)  # |v| never changes
    step = pos[:, 1:] - pos[:, :-1]
    free = (vel[:, 1:] == vel[:, :-1]).all(-1)  # no reflection in this step: p_{t+1} = p_t + v_t
    np.testing.assert_allclose(step[free], vel[:, :-1][free], atol=1e-9)
    flipped = vel[:, 1:] == -vel[:, :-1]
    assert flipped.any()  # some reflections happen, each at a border: p_t + v_t left [0, L]
    outside = (pos[:, :-1] + vel[:, :-1] < 0) | (pos[:, :-1] + vel[:, :-1] > limit)
    assert np.array_equal(flipped & (vel[:, :-1] != 0), outside)


def test_frames_show_the_object_at_its_position():
    x, y = _objects()
    out = moving_objects(x, y, 4, image_size=64, n_objects=1, n_frames=5, seed=1)
    clips, corner = out["x"], np.rint(out["positions"]).astype(int)
    assert clips.shape == (4, 5, 1, 64, 64) and clips.dtype == np.uint8
    for n in range(4):
        obj = x[y.tolist().index(out["labels"][n, 0]), 0].numpy()
        for t in range(5):
            r, c = corner[n, t, 0]
            frame = clips[n, t, 0].copy()
            assert np.array_equal(frame[r : r + 28, c : c + 28], obj)
            frame[r : r + 28, c : c + 28] = 0
            assert not frame.any()


def test_same_seed_same_clips_and_prefixes_agree():
    x, y = _objects()
    a = moving_objects(x, y, 8, image_size=32, n_objects=2, n_frames=6, seed=5, draws=20)
    b = moving_objects(x, y, 8, image_size=32, n_objects=2, n_frames=6, seed=5, draws=20)
    c = moving_objects(x, y, 8, image_size=32, n_objects=2, n_frames=6, seed=6, draws=20)
    big = moving_objects(x, y, 20, image_size=32, n_objects=2, n_frames=6, seed=5)
    assert np.array_equal(a["x"], b["x"]) and not np.array_equal(a["x"], c["x"])
    assert np.array_equal(a["x"], big["x"][:8]) and np.array_equal(a["labels"], big["labels"][:8])


def test_registered_dataset_spec_labels_and_fixed_test_set():
    try:
        ds, tr = load_dataset(DataConfig(name="moving_fmnist_cpu", n_test=6), "test")
    except Exception as e:  # noqa: BLE001 - Fashion-MNIST is not installed here
        pytest.skip(f"fashion_mnist unavailable: {e}")
    assert ds.x.shape == (6, 16, 1, 32, 32) and ds.x.dtype == torch.uint8
    assert ds.spec.modality == "video" and ds.spec.num_classes == 10 and ds.spec.encoding == "8bit"
    assert torch.equal(ds.y, torch.from_numpy(ds.labels[:, 0]))
    other, _ = load_dataset(DataConfig(name="moving_fmnist_cpu", n_test=6, seed=99), "test")
    assert torch.equal(ds.x, other.x)  # the test set ignores data.seed
    train_a, _ = load_dataset(DataConfig(name="moving_fmnist_cpu", n_train=4, seed=1), "train")
    train_b, _ = load_dataset(DataConfig(name="moving_fmnist_cpu", n_train=4, seed=2), "train")
    assert not torch.equal(train_a.x, train_b.x)


def test_batch_transform_dequantizes_clips_elementwise():
    x, y = _objects()
    clips = torch.from_numpy(moving_objects(x, y, 3, image_size=32, n_objects=1, n_frames=4)["x"])
    ds_spec = DataSpec((4, 1, 32, 32), 10, modality="video")
    tr = BatchTransform(ds_spec, DataConfig(name="moving_mnist_cpu"))
    u = torch.rand(clips.shape, generator=torch.Generator().manual_seed(0))
    assert tr.random and tr.spec.shape == (4, 1, 32, 32) and tr.spec.dequantized
    torch.testing.assert_close(tr(clips, u), (clips.float() + u) / 128 - 1)
    plain = BatchTransform(ds_spec, DataConfig(name="moving_mnist_cpu", dequantize=False))
    torch.testing.assert_close(plain(clips), clips.float() / 127.5 - 1)


def test_read_clips_npz_and_gif_round_trip(tmp_path):
    import imageio.v3 as iio

    x, y = _objects()
    clips = moving_objects(x, y, 2, image_size=32, n_objects=1, n_frames=5)["x"]
    np.savez(tmp_path / "c.npz", clips=clips, labels=np.arange(2))
    assert torch.equal(read_clips(tmp_path / "c.npz"), torch.from_numpy(clips))
    iio.imwrite(tmp_path / "c.gif", clips[0, :, 0], loop=0)
    assert torch.equal(read_clips(tmp_path / "c.gif"), torch.from_numpy(clips[:1]))
    np.savez(tmp_path / "bad.npz", images=clips[:, 0])
    with pytest.raises(DataError, match="clips"):
        read_clips(tmp_path / "bad.npz")
