"""Tracking K <= 3 objects in Moving-MNIST-style clips and judging them: windowed k-means detection, association by the
most uniform motion across overlaps (Viterbi; Hungarian assignment in between), identity consistency of the tracks, and a
least-squares fit of the generator's physics (constant velocity, mirrored at the borders; Srivastava et al. 2015)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from genlab.metrics.feature_nets import extract_logits

THRESHOLD = 0.1  # pixels with intensity u = (x + 1) / 2 at or below this are background
TOUCH = 0.01  # an object with more than this share of its weight on the border with another object touches it
MAX_STEP = 0.25  # the physics fit searches velocities per axis in [-0.25 L, 0.25 L] (the generator's speed is 0.1 L)


def _as_frames(clips: torch.Tensor) -> torch.Tensor:
    """Clips (N, T, C, H, W) in [-1, 1] or uint8 -> intensities u in [0, 1], (N, T, H, W) float32 (channels averaged)."""
    if clips.ndim != 5:
        raise ValueError(f"expected clips (N, T, C, H, W); got shape {tuple(clips.shape)}")
    u = clips.float() / 255 if clips.dtype == torch.uint8 else (clips.float() + 1) / 2
    return u.mean(2)


def _check_size(size: int, H: int, W: int, k: int) -> None:
    if k < 1 or not 1 <= size <= min(H, W):
        raise ValueError(f"need k >= 1 objects of side 1 <= size <= {min(H, W)} (the frame is {H} x {W}); got k={k}, size={size}")


def detect_objects(
    u: torch.Tensor, k: int, size: int, *, threshold: float = THRESHOLD, iters: int = 10, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (M, k, 2) float64 (row, column, in pixels) of k objects of side `size` in each frame u (M, H, W) in
    [0, 1], and whether each stands apart (M, k) bool: at most TOUCH of its weight lies on the border with another.

    Pixel weights w = u where u > threshold, else 0; m(p) = the weight in the (size / 2)-square around pixel p.
    Seeds (a deterministic k-means++): the pixel of largest m, then k - 1 times the pixel of largest
    m(p) min(1, d(p)^2 / size^2), d the distance to the nearest seed (the heaviest region about an object away).
    Then windowed k-means (Lloyd): each pixel goes to its nearest centre and counts for it when within the centre's
    size x size window; each centre moves to the weighted centroid of its pixels. The border of two objects: the
    pixels whose distances to their nearest and second-nearest centres differ by at most 2.

    Objects that touch or overlap (pixelwise maximum in the generator) split their union along the border, so each
    centre is pulled towards the other while they overlap (by up to about size / 4), and neither stands apart. A
    frame with fewer than k objects gets centres on parts of the ones present (touching); a blank frame puts every
    centre at its middle.
    """
    M, H, W = u.shape
    _check_size(size, H, W, k)
    parts = [_detect_chunk(u[s : s + chunk].float(), k, size, threshold, iters) for s in range(0, M, chunk)]
    if not parts:
        return np.zeros((0, k, 2)), np.zeros((0, k), bool)
    return torch.cat([c for c, _ in parts]).double().numpy(), torch.cat([a for _, a in parts]).numpy()


def _box_sum(w: torch.Tensor, side: int) -> torch.Tensor:
    """(M, H, W) -> the sum of w over the side x side window around each pixel (cut at the borders), by an integral image."""
    _, H, W = w.shape
    ii = F.pad(w.double().cumsum(1).cumsum(2), (1, 0, 1, 0))  # (M, H + 1, W + 1)
    r, c = torch.arange(H) - side // 2, torch.arange(W) - side // 2
    r0, c0, r1, c1 = r.clamp(0, H), c.clamp(0, W), (r + side).clamp(0, H), (c + side).clamp(0, W)
    return (ii[:, r1][:, :, c1] - ii[:, r0][:, :, c1] - ii[:, r1][:, :, c0] + ii[:, r0][:, :, c0]).to(w.dtype)


def _centroid(m: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted centroids (..., 2) and masses (...) of weights m (..., H, W)."""
    mass = m.sum((-2, -1))
    c = torch.stack([(m.sum(-1) * rows).sum(-1), (m.sum(-2) * cols).sum(-1)], -1) / mass.clamp(min=1e-12)[..., None]
    return c, mass


def _two_nearest(d2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Over dim 1 of squared distances d2 (M, k, H, W), k >= 2: the nearest and second-nearest indices and squared
    distances, each (M, H, W), first index on ties; elementwise, as torch's argmin over a short middle dim is slow."""
    best, i1 = d2[:, 0], torch.zeros(d2[:, 0].shape, dtype=torch.long)
    second, i2 = torch.full_like(best, float("inf")), torch.zeros_like(i1)
    for j in range(1, d2.shape[1]):
        dj = d2[:, j]
        closer, middle = dj < best, (dj >= best) & (dj < second)
        second, i2 = torch.where(closer, best, torch.where(middle, dj, second)), torch.where(closer, i1, torch.where(middle, j, i2))
        best, i1 = torch.where(closer, dj, best), torch.where(closer, j, i1)
    return i1, i2, best, second


def _detect_chunk(u: torch.Tensor, k: int, size: int, threshold: float, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    M, H, W = u.shape
    rows, cols = torch.arange(H, dtype=u.dtype), torch.arange(W, dtype=u.dtype)
    w = torch.where(u > threshold, u, torch.zeros(()))
    # Seeds: the heaviest region, then the heaviest ones away from the seeds so far.
    m = _box_sum(w, max(1, size // 2)).flatten(1)  # (M, HW)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).flatten(0, 1)  # (HW, 2)
    middle = torch.tensor([(H - 1) / 2, (W - 1) / 2], dtype=u.dtype).expand(M, 2)
    near = torch.full_like(m, float("inf"))  # squared distance to the nearest seed
    seeds: list[torch.Tensor] = []
    for j in range(k):
        score = m * (near / size**2).clamp(max=1)
        seed = torch.where(score.amax(1, keepdim=True) > 0, grid[score.argmax(1)], seeds[0] if j else middle)
        seeds.append(seed)
        near = torch.minimum(near, (grid[None] - seed[:, None]).square().sum(-1))
    c = torch.stack(seeds, 1)  # (M, k, 2)
    # Windowed Lloyd steps.
    for _ in range(iters):
        own, _ = _assign(c, rows, cols, size)
        new, mass = _centroid(w[:, None] * own, rows, cols)
        c = torch.where(mass[..., None] > 0, new, c)
    own, nearest = _assign(c, rows, cols, size)
    if nearest is None:
        return c, torch.ones(M, 1, dtype=torch.bool)
    i1, i2, d1, d2 = nearest
    border = w * (d2.sqrt() - d1.sqrt() <= 2) * own.any(1)  # (M, H, W): weight on a border of two objects
    ks = torch.arange(k)[None, :, None, None]
    touching = (((i1[:, None] == ks) | (i2[:, None] == ks)) * border[:, None]).sum((2, 3))
    return c, touching <= TOUCH * (w[:, None] * own).sum((2, 3))


def _assign(c: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple | None]:
    """own (M, k, H, W): the pixels each centre c (M, k, 2) counts (its nearest, within its size x size window), and
    the two nearest centres per pixel (`_two_nearest`; None for k = 1)."""
    dr = rows[None, None, :, None] - c[:, :, 0, None, None]  # (M, k, H, 1)
    dc = cols[None, None, None, :] - c[:, :, 1, None, None]  # (M, k, 1, W)
    half = size / 2
    own = (dr.abs() <= half) & (dc.abs() <= half)
    if c.shape[1] == 1:
        return own, None
    nearest = _two_nearest(dr.square() + dc.square())
    return own & (nearest[0][:, None] == torch.arange(c.shape[1])[None, :, None, None]), nearest


def reflect(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """Positions mirrored into [lo, hi] as the generator does: lo + fold(x - lo, hi - lo)."""
    return lo + fold(np.asarray(x, np.float64) - lo, np.asarray(hi, np.float64) - lo)


def fold(u: np.ndarray, L: np.ndarray | float) -> np.ndarray:
    """The triangle wave of period 2L: where an unbounded position u lands in [0, L] after its mirror images at 0 and L,
    fold(u) = L - |L - (u mod 2L)|. `data.video.bounce` from p0 with velocity v gives exactly fold(p0 + v t)."""
    return L - np.abs(L - np.mod(u, 2 * np.asarray(L, np.float64)))


def object_range(frame: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The range [lo, hi] (row, column) of an object's box centre in an H x W frame: its top-left corner moves in
    [0, H - s] x [0, W - s] (`data.video.moving_objects`), and the centre of pixels p..p+s-1 is p + (s - 1) / 2."""
    lo = np.full(2, (size - 1) / 2)
    return lo, lo + np.array(frame, np.float64) - size


def associate(detections: np.ndarray, apart: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame detections (N, T, K, 2) and their `apart` flags (N, T, K) -> tracks (N, T, K, 2) and their flags,
    track k taking detection k in the first clear frame (a frame where every object stands apart).

    Where objects touch, their detections are pulled together (see `detect_objects`) and say little about who is who.
    Clear frames: the labelling that is most nearly uniform motion, exactly (Viterbi over pairs of permutations,
    (K!)^3 terms per frame, K <= 3): min over pi of sum_j sum_k |x_{j+1} - reflect(x_j + (x_j - x_{j-1})
    (t_{j+1} - t_j) / (t_j - t_{j-1}))|^2 over the clear frames t_j, x_j the detection pi_j(k), mirrored into [lo, hi]
    as the generator's objects are. So the motion before an overlap, carried across it, decides who is who after it,
    and crossing objects keep their identities unless they also move alike. Other frames: the Hungarian assignment
    (scipy's linear_sum_assignment) of the detections to the tracks interpolated between the clear frames. A clip with
    fewer than two clear frames takes every frame as clear.
    """
    N, T, K = detections.shape[:3]
    if K == 1 or T < 2:
        return detections.copy(), apart.copy()
    if K > 3:
        raise ValueError(f"tracking takes at most 3 objects per frame (the exact association grows as K!^3); got K={K}")
    perms = np.array(list(itertools.permutations(range(K))))  # (P, K)
    clear = apart.all(-1)  # (N, T)
    tracks, flags, frames = detections.copy(), apart.copy(), np.arange(T)
    for n in range(N):
        t = frames[clear[n]] if clear[n].sum() >= 2 else frames
        label = perms[_smoothest_labels(detections[n, t][:, perms], t.astype(np.float64), lo, hi)]  # (R, K)
        tracks[n, t], flags[n, t] = detections[n, t[:, None], label], apart[n, t[:, None], label]
        for u in frames[~np.isin(frames, t)]:
            j = np.searchsorted(t, u)
            a, b = t[max(j - 1, 0)], t[min(j, len(t) - 1)]
            w = 0.0 if a == b else (u - a) / (b - a)
            ref = (1 - w) * tracks[n, a] + w * tracks[n, b]
            col = linear_sum_assignment(((ref[:, None] - detections[n, u][None]) ** 2).sum(-1))[1]
            tracks[n, u], flags[n, u] = detections[n, u, col], apart[n, u, col]
    return tracks, flags


def _smoothest_labels(D: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Permutation indices (R,) for detections D (R, P, K, 2) of frames t (R,) relabelled by each of P permutations
    (perms[0] the identity, kept in the first frame): the labelling of least sum of squared deviations from uniform
    motion (see `associate`), by dynamic programming over (pi_{j-1}, pi_j)."""
    R, P = D.shape[:2]
    if R == 2:
        return np.array([0, ((D[1] - D[0, 0]) ** 2).sum((-2, -1)).argmin()])
    V = np.full((P, P), np.inf)  # V[a, b]: least cost of frames 0..j with pi_{j-1} = a, pi_j = b
    V[0] = 0.0
    back = np.zeros((R, P, P), np.int64)
    for j in range(1, R - 1):
        step = (t[j + 1] - t[j]) / (t[j] - t[j - 1])
        prev, now, nxt = D[j - 1, :, None, None], D[j, None, :, None], D[j + 1, None, None, :]
        cost = ((nxt - reflect(now + (now - prev) * step, lo, hi)) ** 2).sum((-2, -1))  # (a, b, c)
        total = V[..., None] + cost
        back[j + 1], V = total.argmin(0), total.min(0)
    pi = np.zeros(R, np.int64)
    pi[R - 2], pi[R - 1] = divmod(int(V.argmin()), P)
    for j in range(R - 1, 1, -1):
        pi[j - 2] = back[j, pi[j - 1], pi[j]]
    return pi


@dataclass
class Tracks:
    """Tracked objects of N clips of T frames, K objects each."""

    centres: np.ndarray  # (N, T, K, 2) float64: row and column, in pixels
    apart: np.ndarray  # (N, T, K) bool: the object touches no other (`detect_objects`), so its position and crop are its own


def track_objects(clips: torch.Tensor, k: int, size: int, *, threshold: float = THRESHOLD) -> Tracks:
    """k objects of side `size` tracked through clips (N, T, C, H, W) in [-1, 1] or uint8: `detect_objects` per
    frame, then `associate` over time.

    >>> clips = -torch.ones(1, 3, 1, 16, 16)
    >>> for t in range(3):
    ...     clips[0, t, 0, 2 + t : 6 + t, 3:7] = 1
    >>> track_objects(clips, 1, 4).centres[0, :, 0].tolist()
    [[3.5, 4.5], [4.5, 4.5], [5.5, 4.5]]
    """
    u = _as_frames(clips)
    N, T, H, W = u.shape
    centres, apart = detect_objects(u.flatten(0, 1), k, size, threshold=threshold)
    return Tracks(*associate(centres.reshape(N, T, k, 2), apart.reshape(N, T, k), *object_range((H, W), size)))


def crop_objects(frames: torch.Tensor, centres: np.ndarray, size: int, out_size: int | None = None) -> torch.Tensor:
    """size x size crops (M, K, C, s, s) of frames (M, C, H, W) in [-1, 1] around centres (M, K, 2), the box kept
    inside the frame (top-left = round(centre - (size - 1) / 2), clamped); pixels nearer another centre are set to the
    background -1, so a crop shows its own object only; resized bilinearly to out_size x out_size when given."""
    M, C, H, W = frames.shape
    K = centres.shape[1]
    top = torch.from_numpy(np.rint(centres - (size - 1) / 2)).long()  # (M, K, 2)
    top[..., 0], top[..., 1] = top[..., 0].clamp(0, H - size), top[..., 1].clamp(0, W - size)
    offs = torch.arange(size)
    r = top[..., 0, None, None] + offs[:, None]  # (M, K, s, 1)
    c = top[..., 1, None, None] + offs[None, :]  # (M, K, 1, s)
    crops = frames.permute(0, 2, 3, 1)[torch.arange(M)[:, None, None, None], r, c].permute(0, 1, 4, 2, 3).float()  # (M, K, C, s, s)
    if K > 1:
        ctr = torch.from_numpy(centres).float()  # (M, K, 2)
        dr = r[:, :, None].float() - ctr[:, None, :, 0, None, None]  # (M, K crop, K centre, s, 1)
        dc = c[:, :, None].float() - ctr[:, None, :, 1, None, None]  # (M, K crop, K centre, 1, s)
        d2 = dr**2 + dc**2
        mine = (d2 <= d2.amin(2, keepdim=True)).diagonal(dim1=1, dim2=2).permute(0, 3, 1, 2)  # (M, K, s, s)
        crops = torch.where(mine[:, :, None], crops, torch.full((), -1.0))
    if out_size is not None and out_size != size:
        crops = F.interpolate(crops.flatten(0, 1), size=(out_size, out_size), mode="bilinear", align_corners=False).unflatten(0, (M, K))
    return crops


@dataclass
class TrackedIdentities(Tracks):
    """Tracks with the classifier's class of each object's crop in each frame."""

    classes: np.ndarray  # (N, T, K)


def track_identities(net: Any, clips: torch.Tensor, k: int, size: int, *, out_size: int = 28) -> TrackedIdentities:
    """Track k objects of side `size` in clips (N, T, C, H, W) and classify the size x size crop around each tracked
    centre where the object stands apart, resized to out_size x out_size (the feature network's input), by
    net.classify (`feature_nets.extract_logits`); class -1 where it touches another object (not classified)."""
    tracks = track_objects(clips, k, size)
    N, T = tracks.centres.shape[:2]
    frames = clips.flatten(0, 1)
    frames = (frames.float() / 127.5 - 1) if frames.dtype == torch.uint8 else frames
    crops = crop_objects(frames, tracks.centres.reshape(N * T, k, 2), size, out_size).flatten(0, 1)
    seen = torch.from_numpy(tracks.apart.reshape(-1))
    classes = np.full(N * T * k, -1, np.int64)
    if seen.any():
        classes[seen.numpy()] = extract_logits(net, crops[seen]).argmax(1)
    return TrackedIdentities(tracks.centres, tracks.apart, classes.reshape(N, T, k))


def identity_share(classes: np.ndarray, judged: np.ndarray | None = None) -> float:
    """The share of clips in which every object keeps one class over its judged frames: classes (N, T, K), judged
    (N, T, K) bool (default: all frames). An object never judged (it touches another object in every frame) cannot
    be told apart and does not count against its clip; `identity_coverage` says how many objects were judged.

    >>> identity_share(np.array([[[1], [1]], [[1], [0]]]))
    0.5
    """
    judged = np.ones(classes.shape, bool) if judged is None else judged
    first = judged.argmax(1)[:, None]  # (N, 1, K): each object's first judged frame
    ref = np.take_along_axis(classes, first, 1)
    return float(((classes == ref) | ~judged).all((1, 2)).mean())


def identity_coverage(judged: np.ndarray) -> float:
    """The share of tracked objects (N, T, K) judged in at least one frame (seen apart from the others)."""
    return float(judged.any(1).mean())


def multiset_accuracy(classes: np.ndarray, labels: np.ndarray, judged: np.ndarray | None = None) -> float:
    """The share of judged objects whose class is one of the clip's true classes, matched as multisets per frame:
    sum_{n,t} sum_c min(#{k judged: class = c}, #{k: label = c}) / #judged. classes (N, T, K), labels (N, K);
    nan when nothing is judged.

    >>> multiset_accuracy(np.array([[[3, 7]], [[3, 3]]]), np.array([[7, 3], [3, 5]]))
    0.75
    """
    judged = np.ones(classes.shape, bool) if judged is None else judged
    if not judged.any():
        return float("nan")
    C = int(max(classes.max(), labels.max())) + 1
    made = (np.eye(C, dtype=np.int64)[classes] * judged[..., None]).sum(2)  # (N, T, C)
    true = np.eye(C, dtype=np.int64)[labels].sum(1)  # (N, C)
    return float(np.minimum(made, true[:, None]).sum() / judged.sum())


@dataclass
class BounceFit:
    """The physical track nearest to observed positions: start p0 (..., 2) and velocity v0 (..., 2) at frame 0, the
    track (..., T, 2), and the distance per frame (..., T) in pixels between observed and fitted positions."""

    p0: np.ndarray
    v0: np.ndarray
    track: np.ndarray
    residual: np.ndarray


def fit_bounce(
    positions: np.ndarray,
    limit: np.ndarray | float,
    weights: np.ndarray | None = None,
    *,
    max_step: float = MAX_STEP,
    grid: int = 33,
    starts: int = 4,
    iters: int = 30,
) -> BounceFit:
    """Least-squares fit of the generator's physics to positions (..., T, 2) in [0, L] (row, column; L = `limit`, per
    axis or one for both): p_t = fold(p0 + v t) (`fold`: constant velocity, mirrored at 0 and L), i.e.
    min_{p0, v} sum_t w_t |x_t - fold(p0 + v t)|^2, separately per axis; `weights` w (..., T) (default 1) leave out
    frames whose positions are unreliable (w = 0; a track with fewer than two weighted frames counts all).

    The cost is not convex, so: a grid of `grid` x `grid` values (a, b) in [0, L] x [-max_step L, max_step L] (fold is
    even and 2L-periodic, so this covers every start), then from the best `starts` of them, alternating steps (as in
    ICP): unfold each x_t to its mirror image nearest to a + b t (x + 2jL or -x + 2jL), then a, b by linear least
    squares; the cost never rises. A true `bounce` track is fitted exactly (residual ~1e-12).

    >>> from genlab.data.video import bounce
    >>> p, _ = bounce(np.array([3.0, 10.0]), np.array([2.5, -1.5]), 20, 14.0)
    >>> fit = fit_bounce(p, 14.0)
    >>> np.round(fit.v0, 6).tolist(), bool(fit.residual.max() < 1e-9)
    ([2.5, -1.5], True)
    """
    x = np.asarray(positions, np.float64)
    if x.ndim < 2 or x.shape[-1] != 2 or x.shape[-2] < 2:
        raise ValueError(f"expected positions (..., T, 2) with T >= 2 frames; got shape {x.shape}")
    L = np.broadcast_to(np.asarray(limit, np.float64), (2,))
    if (L <= 0).any():
        raise ValueError(f"the range limit must be positive; got {limit}")
    lead, T = x.shape[:-2], x.shape[-2]
    w = np.ones(x.shape[:-1]) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), x.shape[:-1])
    w = np.where((w > 0).sum(-1, keepdims=True) >= 2, w, 1.0)
    y = np.moveaxis(x, -1, -2).reshape(-1, T)  # (M, T): each axis of each track
    Ls = np.broadcast_to(L, (*lead, 2)).reshape(-1)
    a, b = _fit_fold(y, np.repeat(w.reshape(-1, T), 2, 0), Ls, max_step, grid, starts, iters)
    t = np.arange(T)
    fitted = fold(a[:, None] + b[:, None] * t, Ls[:, None])
    sign = np.where(np.mod(a, 2 * Ls) <= Ls, 1.0, -1.0)  # mirrored branch at frame 0: the velocity there is -b
    p0, v0 = fold(a, Ls).reshape(*lead, 2), (sign * b).reshape(*lead, 2)
    track = np.moveaxis(fitted.reshape(*lead, 2, T), -2, -1)
    return BounceFit(p0, v0, track, np.linalg.norm(track - x, axis=-1))


def _nearest_unfolding(y: np.ndarray, u: np.ndarray, L: np.ndarray) -> np.ndarray:
    """The mirror image of y (y + 2jL or -y + 2jL) nearest to u."""
    up = y + 2 * L * np.rint((u - y) / (2 * L))
    down = -y + 2 * L * np.rint((u + y) / (2 * L))
    return np.where(np.abs(up - u) <= np.abs(down - u), up, down)


def _fit_fold(
    y: np.ndarray, w: np.ndarray, L: np.ndarray, max_step: float, grid: int, starts: int, iters: int, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) per row of y (M, T) minimising sum_t w_t (y_t - fold(a + b t, L))^2; see `fit_bounce`."""
    M, T = y.shape
    t = np.arange(T, dtype=np.float64)
    g = np.linspace(0, 1, grid)
    best_a, best_b = np.empty(M), np.empty(M)
    for s in range(0, M, chunk):
        ys, ws, Lc = y[s : s + chunk], w[s : s + chunk], L[s : s + chunk, None]  # (m, T), (m, T), (m, 1)
        ga = g[None] * Lc  # (m, G)
        gb = (2 * g[None] - 1) * max_step * Lc
        u = ga[:, :, None, None] + gb[:, None, :, None] * t  # (m, G, G, T)
        cost = (ws[:, None, None] * (ys[:, None, None] - fold(u, Lc[:, :, None, None])) ** 2).sum(-1).reshape(len(ys), -1)
        pick = np.argsort(cost, 1)[:, :starts]  # (m, S)
        a, b = np.take_along_axis(ga, pick // grid, 1), np.take_along_axis(gb, pick % grid, 1)
        wm = ws[:, None] / ws.sum(-1)[:, None, None]  # (m, 1, T), summing to 1
        tm = (wm * t).sum(-1, keepdims=True)
        for _ in range(iters):
            z = _nearest_unfolding(ys[:, None], a[..., None] + b[..., None] * t, Lc[..., None])  # (m, S, T)
            b = (wm * (z - (wm * z).sum(-1, keepdims=True)) * (t - tm)).sum(-1) / (wm * (t - tm) ** 2).sum(-1)
            a = (wm * z).sum(-1) - b * tm[..., 0]
        final = (ws[:, None] * (ys[:, None] - fold(a[..., None] + b[..., None] * t, Lc[..., None])) ** 2).sum(-1)
        i = final.argmin(1)[:, None]
        best_a[s : s + chunk], best_b[s : s + chunk] = np.take_along_axis(a, i, 1)[:, 0], np.take_along_axis(b, i, 1)[:, 0]
    return best_a, best_b


def physics_error(centres: np.ndarray, frame: tuple[int, int], size: int, apart: np.ndarray | None = None, **fit_kwargs: Any) -> float:
    """Trajectory plausibility of tracked centres (N, T, K, 2) in H x W frames with objects of side `size`: the mean
    distance in pixels between each tracked centre and its object's best physical track (`fit_bounce` on the top-left
    corners c - (s - 1) / 2 in [0, H - s] x [0, W - s]), fitted and averaged over the frames where the object stands
    apart (`apart` (N, T, K), default all; where objects touch, their detections are pulled together). Objects apart
    in fewer than two frames are left out (`identity_coverage` counts the rest); nan when none is left.
    About 0.4 px for the generator's own one-object clips (positions are rounded to whole pixels when drawn)."""
    lo, hi = object_range(frame, size)
    w = np.ones(centres.shape[:-1], bool) if apart is None else apart & (apart.sum(1, keepdims=True) >= 2)
    if not w.any():
        return float("nan")
    w = np.swapaxes(w, 1, 2).astype(np.float64)  # (N, K, T)
    fit = fit_bounce(np.swapaxes(centres, 1, 2) - lo, hi - lo, w, **fit_kwargs)
    return float((fit.residual * w).sum() / w.sum())


def matched_track_error(made: np.ndarray, ref: np.ndarray) -> float:
    """Mean distance in pixels between tracks (N, T, K, 2) and reference tracks of the same clips, the K tracks of each
    clip matched to the reference's by the Hungarian assignment on their mean distance over the frames."""
    if made.shape != ref.shape:
        raise ValueError(f"expected tracks of one shape (N, T, K, 2); got {made.shape} and {ref.shape}")
    d = np.linalg.norm(made[:, :, :, None] - ref[:, :, None], axis=-1).mean(1)  # (N, K made, K ref)
    return float(np.mean([d[n][linear_sum_assignment(d[n])].mean() for n in range(len(d))]))
