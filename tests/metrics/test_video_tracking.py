"""Tracking K objects in generated clips and judging their motion: the generator's true centres recovered, crossing
objects kept apart, the physics fit exact on true tracks and not on broken ones, identity consistency on known clips."""

import numpy as np
import pytest
import torch

from _threads import one_thread  # noqa: F401
from genlab import registry
from genlab.config import build_run_config
from genlab.data.video import VideoDataset, bounce, moving_objects
from genlab.metrics.video_tracking import (
    crop_objects,
    fit_bounce,
    identity_coverage,
    identity_share,
    matched_track_error,
    multiset_accuracy,
    physics_error,
    track_identities,
    track_objects,
)
from genlab.models.base import GenerativeModel, ModelConfig
from genlab.spec import DataSpec

pytestmark = pytest.mark.usefixtures("one_thread")

BRIGHT, DIM = 255, 100


def squares(values, side=8):
    """uint8 (M, 1, 28, 28) images with a centred side x side square of each value (its centroid is the box centre)."""
    img = torch.zeros(len(values), 1, 28, 28, dtype=torch.uint8)
    a = (28 - side) // 2
    for i, v in enumerate(values):
        img[i, 0, a : a + side, a : a + side] = v
    return img


def two_square_clips(n=60, n_frames=10, seed=3, values=(BRIGHT, DIM)):
    """Clips of two 8 x 8 squares (in 28 x 28 boxes) bouncing in 64 x 64 frames, and which clips keep the squares apart
    (a gap of at least 4 px in every frame)."""
    out = moving_objects(squares(values), torch.tensor([1, 0]), n, image_size=64, n_objects=2, n_frames=n_frames, seed=seed)
    centres = out["positions"] + 13.5
    apart = (np.abs(centres[:, :, 0] - centres[:, :, 1]).max(-1) >= 12).all(1)
    return out, centres, apart


def test_one_object_centres_within_rounding():
    out = moving_objects(squares([255]), torch.tensor([0]), 20, image_size=32, n_objects=1, n_frames=12, seed=0)
    tracks = track_objects(torch.from_numpy(out["x"]), 1, 14)
    truth = out["positions"] + 6.5  # the centre of the 14 x 14 box; drawn at whole pixels, so within 0.5 px per axis
    err = np.linalg.norm(tracks.centres - truth, axis=-1)
    assert err.max() < 0.71 and err.mean() > 0.1 and tracks.apart.all()


def test_two_objects_apart_are_tracked_with_their_identities():
    out, truth, apart = two_square_clips()
    assert apart.sum() >= 5
    tracks = track_objects(torch.from_numpy(out["x"][apart]), 2, 28)
    first = np.linalg.norm(tracks.centres[:, :1, :, None] - truth[apart, :1, None], axis=-1)  # (n, 1, K, K)
    label = first[:, 0].argmin(-1)  # which true object each track starts on
    assert (np.sort(label, 1) == [0, 1]).all()
    matched = truth[apart][np.arange(apart.sum())[:, None], :, label].transpose(0, 2, 1, 3)  # (n, T, K, 2)
    assert np.linalg.norm(tracks.centres - matched, axis=-1).max() < 0.71
    assert tracks.apart.all()


def test_crossing_objects_keep_their_tracks_and_are_flagged_while_touching():
    T, size = 13, 12
    clips = -torch.ones(1, T, 1, 48, 48)
    a = np.array([[13.0 + t, 6 + 3 * t] for t in range(T)])  # 6 x 6 squares drawn from (r - 3, c - 3): down and right
    b = np.array([[26.0 - t, 42 - 3 * t] for t in range(T)])  # up and left: they cross at t = 6, where b goes above a
    for t in range(T):
        for r, c in (a[t], b[t]):
            clips[0, t, 0, int(r) - 3 : int(r) + 3, int(c) - 3 : int(c) + 3] = 1
    tracks = track_objects(clips, 2, size)
    truth = np.stack([a, b], 1) - 0.5  # the centres of the squares
    k = int(np.linalg.norm(tracks.centres[0, 0, 0] - truth[0, 0]) > 1)  # track 0 starts on a or on b
    labelled = truth[:, [k, 1 - k]]
    apart = tracks.apart[0].all(-1)
    gap = np.abs(truth[:, 0] - truth[:, 1]).max(-1) - 6  # background pixels between the squares
    assert not apart[gap <= 0].any() and apart[gap >= 3].all() and (gap <= 0).sum() == 3
    err = np.linalg.norm(tracks.centres[0] - labelled, axis=-1)
    assert err[apart].max() < 0.01 and apart[T // 2 + 1 :].sum() >= 4  # after the crossing too


def test_fit_of_true_bouncing_tracks_is_exact_and_recovers_the_motion():
    rng = np.random.default_rng(0)
    L = 36.0
    p0 = rng.uniform(0, L, (50, 2))
    theta = rng.uniform(0, 2 * np.pi, 50)
    v0 = rng.uniform(0.05, 0.25, (50, 1)) * L * np.stack([np.sin(theta), np.cos(theta)], -1)  # the search covers 0.25 L
    pos, vel = bounce(p0, v0, 20, L)
    assert (np.abs(np.diff(np.sign(vel), axis=-2)) > 0).any(-2).all(-1).mean() > 0.3  # many tracks bounce on both axes
    fit = fit_bounce(pos, L)
    assert fit.residual.max() < 1e-8
    np.testing.assert_allclose(fit.v0, v0, atol=1e-8)
    np.testing.assert_allclose(fit.p0, p0, atol=1e-8)


def test_a_jump_leaves_a_residual_unless_its_frames_are_left_out():
    rng = np.random.default_rng(1)
    L = 36.0
    pos, _ = bounce(rng.uniform(8, 28, (40, 2)), rng.uniform(-3, 3, (40, 2)), 16, L)
    jumped = pos.copy()
    jumped[:, 8:, 0] = np.clip(jumped[:, 8:, 0] + 6.0, 0, L)  # every track jumps 6 px down at frame 8
    assert fit_bounce(jumped, L).residual.mean(-1).min() > 1.0
    random = rng.uniform(0, L, pos.shape)
    assert fit_bounce(random, L).residual.mean() > 4.0
    once = pos.copy()
    once[:, 5] += 9.0  # one bad frame, weighted out: the rest is fitted exactly
    w = np.ones(pos.shape[:-1])
    w[:, 5] = 0
    fit = fit_bounce(np.clip(once, 0, L), L, w)
    assert fit.residual[:, np.arange(16) != 5].max() < 1e-8 and fit.residual[:, 5].min() > 1.0


def test_physics_error_of_generated_clips_and_of_clips_out_of_order():
    out = moving_objects(squares([255]), torch.tensor([0]), 30, image_size=32, n_objects=1, n_frames=12, seed=1)
    x = torch.from_numpy(out["x"])
    tracks = track_objects(x, 1, 14)
    assert physics_error(tracks.centres, (32, 32), 14) < 0.5  # drawn at whole pixels: rounding only
    shuffled = track_objects(x[:, torch.randperm(12, generator=torch.Generator().manual_seed(0))], 1, 14)
    assert physics_error(shuffled.centres, (32, 32), 14) > 2.0


class Centre(torch.nn.Module):
    """A stand-in classifier: class 1 when the middle of a 28 x 28 crop is bright, else 0."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def features(self, x):
        return x[..., 11:17, 11:17].flatten(1).mean(1, keepdim=True) * self.w

    def classify(self, x):
        m = self.features(x) - 0.4
        return torch.cat([-m, m], 1)


def test_identity_consistency_of_fixed_objects_and_of_objects_swapped_mid_clip():
    out, _, apart = two_square_clips(n=80)
    swapped, _, _ = two_square_clips(n=80, values=(DIM, BRIGHT))  # the same clips with the two squares' looks exchanged
    x, y = torch.from_numpy(out["x"][apart]), torch.from_numpy(swapped["x"][apart])
    fixed = track_identities(Centre(), x, 2, 28)
    assert identity_share(fixed.classes, fixed.apart) == 1.0
    assert multiset_accuracy(fixed.classes, out["labels"][apart], fixed.apart) == 1.0
    n = len(x) // 2
    mixed = x.clone()
    mixed[:n, 5:] = y[:n, 5:]  # the first n clips change their objects at frame 5
    changed = track_identities(Centre(), mixed, 2, 28)
    assert identity_share(changed.classes, changed.apart) == pytest.approx(1 - n / len(x))


def test_crops_blank_the_other_object():
    frames = -torch.ones(1, 1, 20, 20)
    frames[0, 0, 4:8, 4:8] = 1.0
    frames[0, 0, 9:13, 9:13] = 0.5
    crops = crop_objects(frames, np.array([[[5.5, 5.5], [10.5, 10.5]]]), 10)
    assert crops[0, 0].max() == 1.0 and (crops[0, 0] == 0.5).sum() == 0  # the dim square is nearer the other centre
    assert (crops[0, 1] == 0.5).sum() == 16 and (crops[0, 1] == 1.0).sum() == 0


def test_identity_share_and_multiset_accuracy_by_hand():
    classes = np.array([[[1, 2], [1, 2], [1, 3]], [[4, 5], [9, 5], [4, 5]]])  # (N=2, T=3, K=2)
    judged = np.ones(classes.shape, bool)
    assert identity_share(classes) == 0.0
    judged[0, 2, 1] = judged[1, 1, 0] = False  # the frames where the class changes are not judged
    assert identity_share(classes, judged) == 1.0
    labels = np.array([[2, 1], [5, 5]])
    # clip 0: 2 + 2 + 1 of 5 judged match; clip 1: {4, 5} vs {5, 5} -> 1, {5} -> 1, 1: 3 of 5
    assert multiset_accuracy(classes, labels, judged) == pytest.approx(8 / 10)
    judged[1, :, 0] = False  # clip 1's first object always touches the other: not judged, not counted against it
    classes[1, :, 0] = [1, 2, 3]
    assert identity_share(classes, judged) == 1.0 and identity_coverage(judged) == 0.75


def test_matched_track_error_ignores_the_order_of_tracks():
    ref = np.random.default_rng(0).uniform(0, 30, (4, 6, 2, 2))
    assert matched_track_error(ref[:, :, ::-1], ref) == 0.0
    assert matched_track_error(ref + np.array([3.0, 4.0]), ref) == pytest.approx(5.0)


class Replay(GenerativeModel):
    """A 'generator' whose samples are the given clips."""

    family, likelihood = "video", "none"

    def __init__(self, clips):
        super().__init__(ModelConfig(name="replay"), DataSpec(tuple(clips.shape[1:]), 10, modality="video"))
        self.clips, self.p = clips, torch.nn.Parameter(torch.zeros(()))

    def sample(self, n, *, labels=None, generator=None):
        return self.clips[:n]


def test_eval_of_a_two_object_generator_reports_tracking_metrics():
    out, _, _ = two_square_clips(n=6, n_frames=8)
    test = VideoDataset(
        torch.from_numpy(out["x"]),
        torch.from_numpy(out["labels"][:, 0]),
        DataSpec((8, 1, 64, 64), num_classes=10, modality="video"),
        "moving",
        positions=out["positions"],
        labels=out["labels"],
        object_size=28,
        source="mnist",
    )
    cfg = build_run_config(
        {"data": {"name": "moving_mnist"}, "model": {"name": "video_diffusion"}, "train": {"max_steps": 1}, "eval": {"n_samples": 6}}
    )
    true = test.x.float() / 127.5 - 1
    numbers, conv = registry.modality("video").sample_metrics(Replay(true), cfg, test)
    assert numbers["trajectory_error"] < 0.5 and 0 <= numbers["identity_consistency"] <= 1 and numbers["identity_coverage"] > 0.5
    assert "physics" in conv["trajectory_error"] and "2 tracked objects" in conv["identity_consistency"]
    frozen = true[:, :1].expand(-1, 8, -1, -1, -1).clone()
    frozen[:, 4:] = true[:, 4:5]  # objects that stop dead half way: no constant velocity fits
    still, _ = registry.modality("video").sample_metrics(Replay(frozen), cfg, test)
    assert still["trajectory_error"] > numbers["trajectory_error"] + 0.3
