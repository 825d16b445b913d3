"""The video modality: writers (.npz, .gif, .png strips), object crops, identity consistency and the metrics of a
predictor on known clips."""

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import registry
from genlab.config import build_run_config
from genlab.data.transforms import from_unit_range
from genlab.data.video import VideoDataset, moving_objects
from genlab.errors import ConfigError
from genlab.modalities.video import identity_consistency, object_crops
from genlab.models.base import GenerativeModel, ModelConfig, SampleOption
from genlab.spec import DataSpec

SPEC = DataSpec((4, 1, 32, 32), num_classes=10, modality="video")


def _clips(n=3, seed=0):
    return torch.rand((n, *SPEC.shape), generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_writers_round_trip(tmp_path):
    import imageio.v3 as iio

    video, x = registry.modality("video"), _clips()
    out = video.write(x, torch.tensor([1, 2, 3]), tmp_path / "s.npz", SPEC)
    with np.load(out) as z:
        assert np.array_equal(z["clips"], from_unit_range(x).numpy()) and z["labels"].tolist() == [1, 2, 3]
    gif = iio.imread(video.write(x, None, tmp_path / "s.gif", SPEC), index=None)
    assert gif.shape[0] == 4  # one GIF frame per clip frame
    png = Image.open(video.write(x, None, tmp_path / "s.png", SPEC))
    pad = 2  # 3 rows of clips, 4 frames per row, 32 px frames shown at 2x
    assert png.size == (2 * (4 * (32 + pad) + pad), 2 * (3 * (32 + pad) + pad))
    with pytest.raises(ConfigError, match=".gif"):
        video.write(x, None, tmp_path / "s.mp3", SPEC)


def test_object_crops_find_a_square():
    frames = torch.full((2, 1, 32, 32), -1.0)
    frames[0, 0, 4:8, 10:14] = 1.0  # centroid (5.5, 11.5)
    _, centre = object_crops(frames, 14)
    torch.testing.assert_close(centre[0], torch.tensor([5.5, 11.5], dtype=torch.float64))
    torch.testing.assert_close(centre[1], torch.tensor([15.5, 15.5], dtype=torch.float64))  # blank: the middle


class Brightness(torch.nn.Module):
    """A stand-in classifier: class 1 for bright crops, 0 for dim ones."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def features(self, x):
        return x.flatten(1).mean(1, keepdim=True) * self.w

    def classify(self, x):
        m = self.features(x)
        return torch.cat([-m, m], 1)


def test_identity_consistency_counts_clips_with_one_class():
    clips = torch.full((2, 3, 1, 32, 32), -1.0)
    clips[:, :, 0, 8:22, 8:22] = 1.0
    clips[1, 2, 0, 8:22, 8:22] = -0.9  # one dim frame: the classifier changes its mind
    share, pred = identity_consistency(Brightness(), clips, 14)
    assert share == 0.5 and pred.tolist() == [[1, 1, 1], [1, 1, 0]]


class Oracle(GenerativeModel):
    """A 'predictor' that returns the true clips it was built with: every prediction metric at its best value."""

    family, likelihood = "video", "none"

    def __init__(self, truth):
        super().__init__(ModelConfig(name="oracle"), DataSpec(tuple(truth.shape[1:]), 10, modality="video"))
        self.truth, self.context_frames, self.p = truth, 2, torch.nn.Parameter(torch.zeros(()))

    @classmethod
    def sample_options(cls):
        return (SampleOption("context", str),)

    def sample(self, n, *, labels=None, generator=None, context=None):
        i = next(i for i in range(len(self.truth)) if torch.equal(self.truth[i, :2], context[0, :2]))
        return self.truth[i : i + n]


def test_sample_metrics_of_a_perfect_predictor():
    g = torch.Generator().manual_seed(0)
    digits, classes = torch.randint(0, 256, (10, 1, 28, 28), generator=g, dtype=torch.uint8), torch.arange(10)
    out = moving_objects(digits, classes, 6, image_size=32, n_objects=1, n_frames=4, seed=0)
    test = VideoDataset(
        torch.from_numpy(out["x"]),
        torch.from_numpy(out["labels"][:, 0]),
        SPEC,
        "moving",
        labels=out["labels"],
        object_size=14,
        source="mnist",
    )
    raw = {"data": {"name": "moving_mnist_cpu"}, "model": {"name": "video_predictor"}, "train": {"max_steps": 1}}
    cfg = build_run_config({**raw, "eval": {"n_samples": 6}})
    truth = test.x.float() / 127.5 - 1
    numbers, conv = registry.modality("video").sample_metrics(Oracle(truth), cfg, test)
    assert numbers["mse"] == 0 and numbers["mae"] == 0 and numbers["ssim"] == pytest.approx(1.0) and numbers["psnr"] == 100.0
    assert numbers["trajectory_error"] == 0 and numbers["frame_fid"] == pytest.approx(0.0, abs=1e-3)
    assert 0 <= numbers["identity_consistency"] <= 1 and conv["features"] == "mnist"
    with pytest.raises(ConfigError, match="context"):
        registry.modality("video").sample_metrics(Oracle(truth), cfg, test, {"context": "x.npz"})
