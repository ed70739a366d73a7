"""ByteTrack (Zhang et al., ECCV 2022): multi-object tracking by associating every detection box.

Per frame, after a Kalman prediction of every track (`streamyolox.analytics.kalman`):

1. high-score detections (score > `track_thresh`) against all confirmed tracks, tracked and lost, by IoU
   (cost ``1 - IoU x score`` with `fuse_score`, as the official code does outside MOT20), at most
   `match_thresh` cost;
2. low-score detections (`low_thresh` < score <= `track_thresh`) against the tracked ones left, cost
   ``1 - IoU`` at most 0.5: an object the detector is less sure of (occluded, blurred) keeps its track;
   tracked ones still unmatched become lost;
3. unconfirmed tracks against the high-score detections left, cost at most 0.7; an unconfirmed track that
   misses a frame is removed;
4. a high-score detection still unmatched with score >= `det_thresh` (default ``track_thresh + 0.1``)
   starts a new, unconfirmed track;
5. lost tracks unseen for more than ``max(1, int(frame_rate / 30 * track_buffer))`` frames are removed.

Where this differs from the official `BYTETracker`, on purpose:

- ids: a track gets its id when it is confirmed (`min_hits` consecutive matched frames, the first
  detection counting as one; 2 is the official behaviour), not when it starts, so ids are not used up by
  one-frame false positives (supervision #1355); unconfirmed detections get -1. The official code also
  confirms every track started on the stream's first frame; here that is `confirm_first_frame`, off by
  default: a false positive on frame 1 would otherwise hold an id for the whole lost-track buffer.
- the id counter belongs to the tracker (one per stream), not to the process (trackers <= 2.4 shared it
  between instances); `reset()` clears the tracks but not the counter, so an id is never handed out twice.
- removed tracks are dropped, not kept in an ever-growing `removed_stracks` list (ByteTrack #328): the
  state is the live tracks only.
- unconfirmed tracks are predicted every frame too (the official code skips them, matching the next
  frame's box against a stale state; with `min_hits` > 2 that would drift).
- no `remove_duplicate_stracks` (a tracked and a lost track overlapping by IoU > 0.85: the one with the
  shorter history is dropped): when one object passes in front of a longer-tracked one and hides it, that
  rule drops the visible object's track and hands its detection the hidden object's id, an id switch. A
  lost track nothing matches expires with the buffer anyway.
- IoU without the ``+1`` pixel of cython_bbox, like the project's NMS.

Association is class-agnostic as in ByteTrack (a car the detector calls a truck for a frame stays one
track); `class_aware` forbids matches across classes. A track's class is the class it was seen as most
often (ties: the one seen first). `classes` limits tracking to those class ids (others get -1).

Why not the `trackers` package (2.6.1, Apache-2.0, `ByteTrackTracker`): its `reset()` restarts ids at 0,
so ids repeat after a reset; it has no third (unconfirmed) association stage, one IoU threshold for both
stages, an xyxy Kalman state instead of ByteTrack's (cx, cy, a, h), no class handling, returns detections
reordered, and pulls in supervision (whose own ByteTrack is deprecated), requests and opencv.

Assignment: scipy's `linear_sum_assignment` (a maintained library with wheels everywhere; `lap` would be
a second solver for the same problem). The official code calls ``lap.lapjv(cost, extend_cost=True,
cost_limit=thresh)``, which leaves a pair unmatched rather than match it above `thresh` and maximises
``sum(thresh - cost)`` over the matches; `assign` solves exactly that objective with scipy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from streamyolox.analytics import kalman
from streamyolox.config_fields import OptionError, check_ranges, ranged

SECOND_MATCH_THRESH = 0.5  # stage 2 (low-score detections), fixed in the official code
UNCONFIRMED_MATCH_THRESH = 0.7  # stage 3 (unconfirmed tracks), fixed in the official code


def shown(value: object) -> str:
    """A value as an error message shows it: YAML's 7 reaches a float field as 7.0, written `7`."""
    return f"{value:g}" if isinstance(value, float) else repr(value)


@dataclass
class ByteTrackOptions:
    """ByteTrack's options, with its names and defaults (see the module docstring). Ranges are declared
    with `ranged` (checked here, listed by `streamyolox stages`)."""

    track_thresh: float = ranged(0.5, ge=0, le=1)
    low_thresh: float = ranged(0.1, ge=0, le=1)
    match_thresh: float = ranged(0.8, ge=0, le=1)
    track_buffer: int = ranged(30, ge=1)
    min_hits: int = ranged(2, ge=1)
    det_thresh: float | None = ranged(None, ge=0, le=1)
    fuse_score: bool = True
    class_aware: bool = False
    confirm_first_frame: bool = False
    classes: list[int] | None = ranged(None, ge=0)  # noqa: RUF009 (ranged returns a dataclasses.field)

    def __post_init__(self) -> None:
        check_ranges(self)
        for name in ("track_buffer", "min_hits"):  # check_ranges takes any number: these count frames
            value = getattr(self, name)
            if not isinstance(value, int):
                raise OptionError(name, f"expected an int >= 1, got {shown(value)}")
        for index, k in enumerate(self.classes or ()):
            if not isinstance(k, int):
                raise OptionError(f"classes[{index}]", f"expected an int >= 0, got {shown(k)}")
        if self.low_thresh > self.track_thresh:
            raise ValueError(f"low_thresh: expected at most track_thresh ({shown(self.track_thresh)}), "
                             f"got {shown(self.low_thresh)}")
        if self.start_thresh > 1.0:
            raise ValueError(f"det_thresh: track_thresh + 0.1 = {self.start_thresh:g} > 1 would start no "
                             f"track; set det_thresh in [0, 1]")

    @property
    def start_thresh(self) -> float:
        """Score a detection needs to start a track (`det_thresh`, else ``track_thresh + 0.1``)."""
        return self.track_thresh + 0.1 if self.det_thresh is None else self.det_thresh


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4) x (M, 4) corner boxes -> (N, M) IoU, areas ``(x2 - x1) * (y2 - y1)`` (no +1)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def assign(cost: np.ndarray, thresh: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Matches (row, col) with cost <= `thresh` maximising ``sum(thresh - cost)``; unmatched rows, cols.

    Every pair above `thresh` is worth 0, the same as leaving both unmatched, so the full rectangular
    assignment scipy solves has the optimum of the best partial matching (lapjv's `cost_limit`).
    """
    rows, cols = cost.shape
    matches: list[tuple[int, int]] = []
    if rows and cols:
        gain = np.where(cost <= thresh, cost - thresh, 0.0)
        for r, c in zip(*linear_sum_assignment(gain)):
            if cost[r, c] <= thresh:
                matches.append((int(r), int(c)))
    matched_rows, matched_cols = {r for r, _ in matches}, {c for _, c in matches}
    return (matches, [r for r in range(rows) if r not in matched_rows],
            [c for c in range(cols) if c not in matched_cols])


class TrackState(enum.Enum):
    NEW = "new"  # not confirmed yet: no id
    TRACKED = "tracked"
    LOST = "lost"  # confirmed, unmatched for up to the lost-track buffer


@dataclass(eq=False)
class Track:
    """One tracked object: Kalman state, history counters and class votes."""

    mean: np.ndarray  # (8,) cx, cy, a, h and their velocities
    cov: np.ndarray  # (8, 8)
    score: float
    start_frame: int
    last_frame: int  # the last frame a detection matched
    state: TrackState = TrackState.NEW
    hits: int = 1  # consecutive matched frames
    track_id: int = -1
    det: int = -1  # index of the detection matched in the current frame, -1 if none
    votes: dict[int, int] = field(default_factory=dict)  # class id -> frames seen as it

    @property
    def box(self) -> np.ndarray:
        """The filter's box (x1, y1, x2, y2)."""
        return kalman.xyah_to_xyxy(self.mean[None])[0]

    @property
    def class_id(self) -> int:
        """The class seen most often (ties: the one seen first)."""
        return max(self.votes, key=self.votes.__getitem__)


@dataclass
class Assignment:
    """Per detection of a frame: track id (-1: not tracked or not confirmed yet) and the class to report
    (the track's most frequent class where confirmed, else the detection's own)."""

    ids: np.ndarray  # (N,) int64
    classes: np.ndarray  # (N,) int64
    # ids of the confirmed tracks this frame removed (lost for longer than the buffer), so a consumer
    # (the count stage) ends their zone visits when the tracker gives them up, not at its own timeout
    removed: tuple[int, ...] = ()


class ByteTracker:
    """ByteTrack for one stream. `update` once per frame, in order; `reset` at a scene cut or reconnect."""

    def __init__(self, options: ByteTrackOptions | None = None, frame_rate: float = 30.0,
                 first_id: int = 1) -> None:
        self.options = options or ByteTrackOptions()
        self.frame_rate = frame_rate
        self.frame_id = 0
        self._tracks: list[Track] = []
        self._next_id = first_id  # this tracker's own counter: never shared, never reset

    @property
    def frame_rate(self) -> float:
        return self._frame_rate

    @frame_rate.setter
    def frame_rate(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"frame_rate: expected a number > 0, got {shown(value)}")
        self._frame_rate = float(value)
        # as the official code (buffer = frame_rate / 30 * track_buffer), but always one frame at least
        self.max_lost = max(1, int(value / 30.0 * self.options.track_buffer))

    @property
    def tracks(self) -> tuple[Track, ...]:
        """The live tracks (new, tracked and lost): the tracker's whole state."""
        return tuple(self._tracks)

    @property
    def next_id(self) -> int:
        """The id the next confirmed track gets."""
        return self._next_id

    def reset(self) -> tuple[int, ...]:
        """Forget every track; ids keep counting up, so none is reused. Returns the confirmed ids dropped."""
        removed = tuple(t.track_id for t in self._tracks if t.track_id >= 0)
        self._tracks = []
        self.frame_id = 0
        return removed

    def update(self, xyxy: ArrayLike, scores: ArrayLike, class_ids: ArrayLike | None = None) -> Assignment:
        """Track one frame's detections ((N, 4) boxes, (N,) scores, (N,) classes)."""
        o = self.options
        xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        classes = (np.zeros(len(xyxy), np.int64) if class_ids is None
                   else np.asarray(class_ids, np.int64).reshape(-1))
        if not len(xyxy) == len(scores) == len(classes):
            raise ValueError(f"update: {len(xyxy)} boxes, {len(scores)} scores, {len(classes)} classes")
        self.frame_id += 1
        self._predict()
        usable = np.ones(len(xyxy), bool) if o.classes is None else np.isin(classes, o.classes)
        high = np.flatnonzero(usable & (scores > o.track_thresh))
        low = np.flatnonzero(usable & (scores > o.low_thresh) & (scores <= o.track_thresh))
        dets = _Frame(xyxy, scores, classes)
        pool = [t for t in self._tracks if t.state is not TrackState.NEW]
        unconfirmed = [t for t in self._tracks if t.state is TrackState.NEW]
        left, high = self._associate(pool, high, dets, o.match_thresh, o.fuse_score)
        tracked_left = [t for t in left if t.state is TrackState.TRACKED]
        missed, _ = self._associate(tracked_left, low, dets, SECOND_MATCH_THRESH, fuse=False)
        for t in missed:
            t.state = TrackState.LOST
        dropped, high = self._associate(unconfirmed, high, dets, UNCONFIRMED_MATCH_THRESH, o.fuse_score)
        gone = {id(t) for t in dropped}
        gone |= {id(t) for t in self._tracks
                 if t.state is TrackState.LOST and self.frame_id - t.last_frame > self.max_lost}
        removed = tuple(t.track_id for t in self._tracks if id(t) in gone and t.track_id >= 0)
        self._tracks = [t for t in self._tracks if id(t) not in gone]
        self._start(high[scores[high] >= o.start_thresh], dets)
        return self._assignment(classes, removed)

    def _predict(self) -> None:
        if not self._tracks:
            return
        mean = np.stack([t.mean for t in self._tracks])
        cov = np.stack([t.cov for t in self._tracks])
        lost = np.array([t.state is TrackState.LOST for t in self._tracks])
        mean[lost, 7] = 0.0  # as the official code: a lost box stops growing or shrinking
        mean, cov = kalman.predict(mean, cov)
        for t, m, c in zip(self._tracks, mean, cov):
            t.mean, t.cov, t.det = m, c, -1

    def _associate(self, tracks: list[Track], det_index: np.ndarray, dets: _Frame, thresh: float,
                   fuse: bool) -> tuple[list[Track], np.ndarray]:
        """Match `tracks` to detections `det_index`; returns the unmatched tracks and detection indices."""
        if not tracks or not len(det_index):
            return list(tracks), det_index
        boxes = kalman.xyah_to_xyxy(np.stack([t.mean for t in tracks]))
        iou = iou_matrix(boxes, dets.xyxy[det_index])
        if fuse:
            iou = iou * dets.scores[det_index][None, :]
        cost = 1.0 - iou
        if self.options.class_aware:
            track_classes = np.array([t.class_id for t in tracks])
            cost[track_classes[:, None] != dets.classes[det_index][None, :]] = np.inf
        matches, free_tracks, free_dets = assign(cost, thresh)
        self._apply(tracks, [(r, int(det_index[c])) for r, c in matches], dets)
        return [tracks[r] for r in free_tracks], det_index[free_dets]

    def _apply(self, tracks: list[Track], matches: list[tuple[int, int]], dets: _Frame) -> None:
        """Kalman-correct the matched tracks (one batched update) and advance their counters."""
        if not matches:
            return
        chosen = [tracks[r] for r, _ in matches]
        index = np.array([i for _, i in matches])
        mean, cov = kalman.update(np.stack([t.mean for t in chosen]), np.stack([t.cov for t in chosen]),
                                  kalman.xyxy_to_xyah(dets.xyxy[index]))
        for t, i, m, c in zip(chosen, index, mean, cov):
            t.mean, t.cov, t.det, t.score = m, c, int(i), float(dets.scores[i])
            t.hits = t.hits + 1 if t.last_frame == self.frame_id - 1 else 1
            t.last_frame = self.frame_id
            k = int(dets.classes[i])
            t.votes[k] = t.votes.get(k, 0) + 1
            if t.state is TrackState.LOST:
                t.state = TrackState.TRACKED
            elif t.state is TrackState.NEW and t.hits >= self.options.min_hits:
                self._confirm(t)

    def _confirm(self, track: Track) -> None:
        track.state, track.track_id = TrackState.TRACKED, self._next_id
        self._next_id += 1

    def _start(self, det_index: np.ndarray, dets: _Frame) -> None:
        if not len(det_index):
            return
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(dets.xyxy[det_index]))
        confirm = self.options.min_hits <= 1 or (self.options.confirm_first_frame and self.frame_id == 1)
        for i, m, c in zip(det_index, mean, cov):
            t = Track(m, c, float(dets.scores[i]), self.frame_id, self.frame_id, det=int(i),
                      votes={int(dets.classes[i]): 1})
            if confirm:
                self._confirm(t)
            self._tracks.append(t)

    def _assignment(self, classes: np.ndarray, removed: tuple[int, ...]) -> Assignment:
        ids = np.full(len(classes), -1, np.int64)
        out_classes = classes.copy()
        for t in self._tracks:
            if t.det >= 0 and t.track_id >= 0:
                ids[t.det] = t.track_id
                out_classes[t.det] = t.class_id
        return Assignment(ids, out_classes, removed)


@dataclass
class _Frame:
    """One frame's detections as float64/int64 arrays."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
