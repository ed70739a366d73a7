"""A stage's lanes (`streamyolox.graph.lanes`): calls in flight at once, outputs in input order, failures stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.graph.test_runner import _records, _run_here

pytestmark = pytest.mark.timeout(120)

LANES = """
name: lanes
stages:
  src: {kind: "fake_stages:Synthetic", frames: 60, size: tiny, stream: cam}
  mid: {kind: "fake_stages:Passthrough", inputs: [src], lanes: 3, jitter_ms: 15, queue: 8}
  sink: {kind: "fake_stages:Collect", inputs: [mid], path: "${T}/out.jsonl"}
"""


def test_lanes_overlap_and_keep_the_order(tmp_path: Path) -> None:
    # random sleeps make later calls finish first: the sink must still get 0..59 once each, in order
    res = _run_here(tmp_path, LANES, metrics_json=str(tmp_path / "m.json"))
    assert res.exit_code == 0 and res.error is None
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed and [r["frame"] for r in recs] == list(range(60))
    assert max(r["extra"]["in_flight"] for r in recs) >= 2  # calls really overlapped
    assert max(r["extra"]["in_flight"] for r in recs) <= 3  # never more than the lanes
    rows = {r["stage"]: r for r in json.loads((tmp_path / "m.json").read_text())["stages"]}
    assert rows["mid"]["frames_in"] == rows["mid"]["frames_out"] == 60


def test_lanes_with_batches_keep_the_order(tmp_path: Path) -> None:
    text = LANES.replace("lanes: 3,", "lanes: 2, batch: 4, wait_ms: 10,")
    res = _run_here(tmp_path, text)
    assert res.exit_code == 0
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed and [r["frame"] for r in recs] == list(range(60))


def test_a_failing_lane_stops_the_stage_with_its_error(tmp_path: Path) -> None:
    res = _run_here(tmp_path, LANES.replace("lanes: 3,", "lanes: 3, fail_on: 17,"))
    assert res.exit_code == 1
    assert res.error == "stage 'mid' failed on frame 17: ValueError: boom at 17"
    recs, closed = _records(tmp_path / "out.jsonl")
    assert closed  # the sink still flushed and closed
    frames = [r["frame"] for r in recs]
    assert 17 not in frames and frames == sorted(frames) and frames[:17] == list(range(17))
