"""The tracker's parts against plain references: the Kalman filter against the textbook equations (one
track at a time, explicit inverse, ``P = (I - K H) P``), the assignment against brute force over every
partial matching, IoU against a per-pair loop."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from streamyolox.analytics import kalman
from streamyolox.analytics.bytetrack import assign, iou_matrix

F = np.eye(8)
F[:4, 4:] = np.eye(4)
H = np.eye(4, 8)


def ref_noise(h: float, kind: str) -> np.ndarray:
    """ByteTrack's standard deviations, typed in from the paper's code description."""
    wp, wv = 1 / 20, 1 / 160
    if kind == "init":
        std = [2 * wp * h, 2 * wp * h, 1e-2, 2 * wp * h, 10 * wv * h, 10 * wv * h, 1e-5, 10 * wv * h]
    elif kind == "process":
        std = [wp * h, wp * h, 1e-2, wp * h, wv * h, wv * h, 1e-5, wv * h]
    else:
        std = [wp * h, wp * h, 1e-1, wp * h]
    return np.diag(np.square(std))


def ref_step(x: np.ndarray, p: np.ndarray, z: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    q = ref_noise(x[3], "process")
    x, p = F @ x, F @ p @ F.T + q
    if z is None:
        return x, p
    s = H @ p @ H.T + ref_noise(x[3], "measure")
    k = p @ H.T @ np.linalg.inv(s)
    return x + k @ (z - H @ x), (np.eye(8) - k @ H) @ p


def test_kalman_matches_the_textbook_filter() -> None:
    rng = np.random.default_rng(3)
    n, steps = 6, 60
    start = np.column_stack([rng.uniform(50, 600, n), rng.uniform(50, 400, n),
                             rng.uniform(0.3, 1.0, n), rng.uniform(30, 200, n)])
    velocity = rng.normal(0, 3, (n, 4)) * [1, 1, 0.002, 0.2]
    mean, cov = kalman.initiate(start)
    refs = [(np.r_[z, np.zeros(4)], ref_noise(z[3], "init")) for z in start]
    np.testing.assert_allclose(cov, np.stack([p for _, p in refs]), rtol=1e-12)
    for t in range(1, steps):
        truth = start + t * velocity
        z = truth + rng.normal(0, 1, (n, 4)) * [1, 1, 0.01, 1]
        seen = rng.random(n) > 0.2  # some tracks miss a frame: predict only
        mean, cov = kalman.predict(mean, cov)
        if seen.any():
            m, c = kalman.update(mean[seen], cov[seen], z[seen])
            mean[seen], cov[seen] = m, c
        refs = [ref_step(x, p, z[i] if seen[i] else None) for i, (x, p) in enumerate(refs)]
        np.testing.assert_allclose(mean, np.stack([x for x, _ in refs]), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(cov, np.stack([p for _, p in refs]), rtol=1e-7, atol=1e-9)
    # and it tracks: the velocity estimate converged to the true one
    np.testing.assert_allclose(mean[:, 4:6], velocity[:, :2], atol=0.5)


def test_box_conversions_round_trip() -> None:
    boxes = np.array([[10, 20, 50, 100], [0, 0, 1, 3], [100.5, 7.25, 180.75, 9.0]])
    xyah = kalman.xyxy_to_xyah(boxes)
    np.testing.assert_allclose(xyah[0], [30, 60, 0.5, 80])
    np.testing.assert_allclose(kalman.xyah_to_xyxy(xyah), boxes, atol=1e-9)


def ref_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def test_iou_matrix_matches_pairwise() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 100, (9, 2))
    a = np.hstack([xy, xy + rng.uniform(1, 60, (9, 2))])
    b = np.vstack([a[:3] + 2.0, [[0, 0, 0, 0]], a[5:7]])  # a zero-area box gives 0, not NaN
    got = iou_matrix(a, b)
    want = np.array([[ref_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (9, 0)


def best_partial_matching(cost: np.ndarray, thresh: float) -> float:
    """max of sum(thresh - cost) over every partial matching using only pairs with cost <= thresh."""
    rows, cols = cost.shape
    best = 0.0
    for k in range(1, min(rows, cols) + 1):
        for rs in itertools.combinations(range(rows), k):
            for cs in itertools.permutations(range(cols), k):
                pairs = [(r, c) for r, c in zip(rs, cs)]
                if all(cost[r, c] <= thresh for r, c in pairs):
                    best = max(best, sum(thresh - cost[r, c] for r, c in pairs))
    return best


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (4, 4), (3, 5)])
def test_assign_is_the_optimal_thresholded_matching(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(40):
        cost = rng.uniform(0, 1.2, shape)
        cost[rng.random(shape) < 0.2] = np.inf  # forbidden pairs (other class)
        matches, free_rows, free_cols = assign(cost, 0.8)
        assert all(cost[r, c] <= 0.8 for r, c in matches)
        assert sum(0.8 - cost[r, c] for r, c in matches) == pytest.approx(best_partial_matching(cost, 0.8))
        assert sorted([r for r, _ in matches] + free_rows) == list(range(shape[0]))
        assert sorted([c for _, c in matches] + free_cols) == list(range(shape[1]))


def test_assign_prefers_one_good_match_to_two_poor_ones_like_lapjv() -> None:
    """A max-cardinality rule would take A-2 and B-1 (two matches at 0.7); lapjv's cost_limit objective,
    (0.8 - 0.1) > 2 x (0.8 - 0.7), takes A-1 alone."""
    cost = np.array([[0.1, 0.7], [0.7, np.inf]])
    assert assign(cost, 0.8) == ([(0, 0)], [1], [1])
    assert assign(np.zeros((0, 3)), 0.8) == ([], [], [0, 1, 2])
