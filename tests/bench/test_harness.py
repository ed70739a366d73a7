"""Smoke tests of the measurement harness: structure and positive numbers, never timing thresholds."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from streamyolox.bench.harness import Result, RssSampler, link_refs, measure, percentile_ms


def test_measure_counts_calls_and_reports_positive_numbers() -> None:
    calls = []
    timing = measure(lambda: calls.append(sum(range(1000))), repeats=5, warmup=2, items=4)
    assert len(calls) == 7 and len(timing.times_s) == 5
    assert timing.fps > 0 and timing.peak_rss_mb > 0
    assert 0 < timing.latency_ms(50) <= timing.latency_ms(99)


def test_measure_rejects_zero_repeats() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)


def test_percentile_is_linear_interpolation() -> None:
    assert percentile_ms([0.001, 0.002, 0.003], 50) == pytest.approx(2.0)
    assert percentile_ms([0.0, 0.010], 90) == pytest.approx(9.0)


def test_rss_sampler_sees_child_processes() -> None:
    # A child holding 200 MB: the tree's peak must include it and name it separately.
    code = "import time; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(3)"
    child = subprocess.Popen([sys.executable, "-c", code])
    key = None
    try:
        with RssSampler(interval_s=0.02) as rss:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                key = next((k for k in rss.peak_by_process if k.endswith(f"[{child.pid}]")), None)
                if key and rss.peak_by_process[key] >= 190:
                    break
                time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert key is not None and rss.peak_by_process[key] >= 190
    assert rss.peak_total_mb > rss.peak_by_process[key]  # the child plus this process


def test_link_refs_sets_ratio_within_a_suite() -> None:
    rows = [Result("ops", "memcpy", fps=1000.0), Result("ops", "edge", fps=250.0, ref="memcpy"),
            Result("model", "edge", fps=5.0, ref="memcpy"), Result("ops", "skipped", ref="memcpy", skipped="x")]
    link_refs(rows)
    assert rows[1].ratio == pytest.approx(0.25)
    assert rows[2].ratio is None and rows[3].ratio is None
