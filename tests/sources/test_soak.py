"""Memory stays flat while a source runs for minutes: a looping file, and an RTSP stream reconnected
every time it ends. RSS is sampled every second; growth is measured after a warm-up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage

WARMUP_S = 20.0


def soak(packets: Iterator[Packet], seconds: float) -> tuple[int, list[tuple[float, int]]]:
    """Consume `packets` for `seconds`; returns (frames, [(elapsed s, RSS bytes)] sampled every second)."""
    proc = psutil.Process()
    start = next_sample = time.monotonic()
    frames, samples = 0, []
    for _ in packets:
        frames += 1
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - start, proc.memory_info().rss))
            next_sample += 1.0
        if now - start >= seconds:
            break
    return frames, samples


def growth(samples: list[tuple[float, int]]) -> tuple[float, int, int]:
    """(relative growth, baseline, end): the peak RSS over the 10 s after warm-up vs the last 10 s."""
    end_t = samples[-1][0]
    baseline = max(r for t, r in samples if WARMUP_S <= t < WARMUP_S + 10)
    end = max(r for t, r in samples if t >= end_t - 10)
    return end / baseline - 1, baseline, end


@pytest.mark.slow
def test_looping_file_memory_is_flat(street_720p: Path) -> None:
    stage = make_stage(DecodeStage, {"url": str(street_720p), "loop": True})
    stage.open()
    frames, samples = soak(stage.generate(), 100)
    stage.close()
    rel, baseline, end = growth(samples)
    print(f"file soak: {frames} frames, {stage.ctx.counters.get('loops', 0):.0f} loops, "
          f"RSS {baseline / 2**20:.1f} -> {end / 2**20:.1f} MiB ({rel:+.2%})")
    assert stage.ctx.counters["loops"] >= 5
    assert rel < 0.05, f"RSS grew {rel:.1%} ({baseline} -> {end} bytes) over {frames} frames"


@pytest.mark.slow
@pytest.mark.rtsp
def test_reconnecting_rtsp_memory_is_flat(rtsp_server) -> None:
    # The 10 s stream ends again and again: each end is a reconnect, so this soaks the reconnect path.
    stage = make_stage(DecodeStage, {"url": rtsp_server.url, "backoff_initial_s": 0.2, "backoff_max_s": 0.5,
                                     "stall_timeout_s": 3})
    stage.open()
    frames, samples = soak(stage.generate(), 65)
    stage.close()
    rel, baseline, end = growth(samples)
    reconnects = stage.ctx.counters.get("reconnects", 0)
    print(f"rtsp soak: {frames} frames, {reconnects:.0f} reconnects, "
          f"RSS {baseline / 2**20:.1f} -> {end / 2**20:.1f} MiB ({rel:+.2%})")
    assert reconnects >= 5
    assert rel < 0.05, f"RSS grew {rel:.1%} ({baseline} -> {end} bytes) over {reconnects:.0f} reconnects"
