"""Source-side sub-sampling (`stride`, `max_fps`), file pacing, and the reconnect backoff schedule."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from streamyolox.sources import FrameSampler, RetryPolicy
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.testing import make_stage


def kept(sampler: FrameSampler, pts: list[float | None], wall: list[float] | None = None) -> list[int]:
    wall = wall or [0.0] * len(pts)
    return [i for i, (p, w) in enumerate(zip(pts, wall)) if sampler.keep(p, w)]


def test_max_fps_on_pts_grid() -> None:
    pts = [i / 30 for i in range(60)]
    assert kept(FrameSampler(max_fps=7.5), pts) == list(range(0, 60, 4))
    assert kept(FrameSampler(max_fps=30), pts) == list(range(60))
    assert kept(FrameSampler(max_fps=100), pts) == list(range(60))


def test_stride_then_max_fps() -> None:
    pts = [i / 30 for i in range(60)]
    assert kept(FrameSampler(stride=2), pts) == list(range(0, 60, 2))
    assert kept(FrameSampler(stride=2, max_fps=5), pts) == list(range(0, 60, 6))


def test_gap_gives_no_burst_and_clock_reset_restarts() -> None:
    # 10 fps cap; a 1 s hole in the stream, then the clock restarts at 0 (a reconnected camera).
    pts = [0.0, 0.1, 0.2, 1.2, 1.25, 1.3, 1.35, 0.0, 0.05, 0.1]
    assert kept(FrameSampler(max_fps=10), pts) == [0, 1, 2, 3, 5, 7, 9]


def test_wall_clock_when_no_pts() -> None:
    wall = [100 + i / 30 for i in range(30)]
    assert kept(FrameSampler(max_fps=10), [None] * 30, wall) == list(range(0, 30, 3))


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_initial_s=0.5, backoff_max_s=8.0, rng=random.Random(0))
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0), (500, 8.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays)
        assert max(delays) - min(delays) > base * 0.3  # jitter: reconnects of many cameras spread out


def test_realtime_file_is_paced(street_720p: Path) -> None:
    stage = make_stage(DecodeStage, {"url": str(street_720p), "realtime": True})
    stage.open()
    gen = stage.generate()
    next(gen)
    start = time.monotonic()
    for _ in range(15):
        next(gen)
    elapsed = time.monotonic() - start
    stage.close()
    assert elapsed == pytest.approx(15 / 30, abs=0.12)
