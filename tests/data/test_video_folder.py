"""`video_folder`: GIFs and folders of frames, windows of data.frames, labels from sub-folders, resizing, the splits,
the clear errors, and a predictor trained on it from the API."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from _threads import one_thread  # noqa: F401
from genlab.config import DataConfig
from genlab.data.video_folder import video_folder
from genlab.errors import DataError


def _frames(n, h=16, w=16, seed=0):
    """n grayscale frames (n, h, w) uint8 whose values a GIF palette keeps exactly (multiples of 17: 16 levels)."""
    return (np.random.default_rng(seed).integers(0, 16, size=(n, h, w)) * 17).astype(np.uint8)


def _gif(path, frames):
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frames, extension=".gif", loop=0)


def _frame_folder(path, frames):
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(path / f"{i:03d}.png")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "clips"
    frames = {"a1": _frames(8, seed=1), "a2": _frames(8, seed=2), "b1": _frames(12, seed=3), "t1": _frames(4, seed=4)}
    _gif(root / "train" / "cats" / "a1.gif", frames["a1"])
    _frame_folder(root / "train" / "cats" / "a2", frames["a2"])
    _gif(root / "train" / "dogs" / "b1.gif", frames["b1"])
    _gif(root / "train" / "dogs" / "short.gif", _frames(2, seed=5))
    _gif(root / "test" / "dogs" / "t1.gif", frames["t1"])
    return root, frames


def test_clips_windows_labels_and_pixels(folder):
    root, frames = folder
    with pytest.warns(UserWarning, match="1 clip"):
        train = video_folder(DataConfig(name="video_folder", root=str(root), frames=4), "train")
    assert train.spec.shape == (4, 1, 16, 16) and train.spec.modality == "video" and train.spec.class_names == ("cats", "dogs")
    assert len(train) == 2 + 2 + 3 and train.y.tolist() == [0, 0, 0, 0, 1, 1, 1]  # 8 -> 2 windows, 8 -> 2, 12 -> 3
    expected = np.concatenate([frames["a1"], frames["a2"], frames["b1"]]).reshape(7, 4, 1, 16, 16)
    np.testing.assert_array_equal(train.x.numpy(), expected)  # GIF and PNG frames read back exactly, in order
    test = video_folder(DataConfig(name="video_folder", root=str(root), frames=4), "test")
    assert len(test) == 1 and test.y.tolist() == [1]


def test_default_frames_resize_and_rgb(tmp_path):
    root = tmp_path / "v"
    for i in range(3):
        _gif(root / f"c{i}.gif", _frames(5 + i, h=20, w=16, seed=i))
    ds = video_folder(DataConfig(name="video_folder", root=str(root), image_size=8, channels=3), "train")
    assert ds.spec.shape == (5, 3, 8, 8) and ds.y is None  # the shortest clip's length; unlabelled
    assert len(ds) + len(video_folder(DataConfig(name="video_folder", root=str(root), image_size=8, channels=3), "test")) == 3


def test_errors(tmp_path):
    with pytest.raises(DataError, match="data.root"):
        video_folder(DataConfig(name="video_folder"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no clips"):
        video_folder(DataConfig(name="video_folder", root=str(tmp_path / "empty")), "train")
    bad = tmp_path / "bad"
    _gif(bad / "ok.gif", _frames(4))
    (bad / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(DataError, match="broken.gif: not a readable clip"):
        video_folder(DataConfig(name="video_folder", root=str(bad)), "train")
    one = tmp_path / "one"
    _gif(one / "still.gif", _frames(1))
    with pytest.raises(DataError, match="at least 2 frames"):
        video_folder(DataConfig(name="video_folder", root=str(one)), "train")


def test_a_predictor_trains_on_a_folder(folder, tmp_path):
    import genlab

    root, _ = folder
    overrides = [f"data.root={root}", "data.frames=4", "model.hidden=4", "model.translator_width=8", "model.blocks=0"]
    overrides += ["train.max_steps=2", "train.batch_size=4", "train.progress=false", "train.num_threads=1"]
    raw = {"data": {"name": "video_folder"}, "model": {"name": "video_predictor", "levels": 1}, "train": {}}
    with pytest.warns(UserWarning):
        result = genlab.train(raw, overrides, run_dir=tmp_path / "run")
    clips = result.model.sample(1, context=torch.zeros(1, 2, 1, 16, 16))
    assert clips.shape == (1, 4, 1, 16, 16)


def test_mp4_written_by_the_modality_reads_back(tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs imageio-ffmpeg (in the test extras)")
    from genlab import registry
    from genlab.spec import DataSpec

    frames = -torch.ones(1, 6, 1, 16, 16)
    for t in range(6):  # a bright 4 x 4 square moving right on black
        frames[0, t, 0, 6:10, 2 * t : 2 * t + 4] = 1.0
    spec, video = DataSpec((6, 1, 16, 16), modality="video"), registry.modality("video")
    video.write(frames, None, tmp_path / "mp4" / "clip.mp4", spec)
    video.write(frames, None, tmp_path / "gif" / "clip.gif", spec)  # lossless for black and white
    read = {k: video_folder(DataConfig(name="video_folder", root=str(tmp_path / k)), "train").x.float() for k in ("mp4", "gif")}
    h = read["gif"].shape[-1]  # 16 px frames, enlarged 2x, in a grid with a border; the MP4 pads sides to multiples of 16
    assert read["mp4"].shape[:3] == read["gif"].shape[:3] == (1, 6, 1) and read["mp4"].shape[-1] == h + (-h % 16)
    read["mp4"] = read["mp4"][..., :h, :h]
    assert (read["mp4"] - read["gif"]).abs().mean() < 8  # H.264 is lossy: a few grey levels on average
    assert (read["mp4"][:, 1:] - read["mp4"][:, :-1]).abs().mean() > 4 * (read["mp4"] - read["gif"]).abs().mean()  # motion survives
