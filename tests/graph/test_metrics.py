"""Per-stream metrics without processes: stage tallies -> MetricsBoard.stream_rows (frames at the sinks,
states from the source, bounds, retiring ended streams), the age reservoir, the bounded counts."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import numpy as np
from rich.console import Console

from streamyolox.graph.dashboard import Reporter, streams_line
from streamyolox.graph.metrics import MetricsBoard, StageMetrics
from streamyolox.graph.stream_metrics import MAX_STREAMS, Reservoir, StreamBook, bump


def _snap(m: StageMetrics, role: str, t: float, **extra: object) -> dict:
    snap = m.snapshot({}, {}, {})
    snap.update(role=role, time=t, **extra)
    return snap


def _feed(m: StageMetrics, stream: str, n: int, age: float) -> None:
    now = time.time()
    for _ in range(n):
        m.record(1, 1, 0.0, [now - age], [stream])


def _board() -> tuple[MetricsBoard, dict[str, StageMetrics]]:
    kinds = {"src": "decode", "det": "yolox", "json": "json", "mp4": "mp4"}
    return MetricsBoard(kinds), {sid: StageMetrics(sid) for sid in kinds}


def test_frames_are_the_fewest_any_sink_finished_and_ages_are_the_sinks() -> None:
    board, m = _board()
    t = time.time()
    _feed(m["src"], "a", 10, 0.0)
    _feed(m["det"], "a", 10, 5.0)  # a non-sink's ages do not count
    _feed(m["json"], "a", 10, 0.1)
    _feed(m["mp4"], "a", 7, 0.3)
    status = [{"id": "a", "url": "rtsp://x/a", "state": "up", "reconnects": 2, "error": None}]
    board.update(_snap(m["src"], "source", t, source_streams=status))
    for sid, role in (("det", "stage"), ("json", "sink"), ("mp4", "sink")):
        board.update(_snap(m[sid], role, t))
    (row,) = board.stream_rows(dropped={"a": {"dropped": 3}})
    assert row["id"] == "a" and row["source"] == "src" and row["url"] == "rtsp://x/a"
    assert row["state"] == "up" and row["reconnects"] == 2 and row["dropped"] == 3
    assert row["frames"] == 7
    ages = np.array([0.1] * 10 + [0.3] * 7)  # pooled over both sinks, measured a little later
    assert abs(row["age_p50_s"] - np.percentile(ages, 50)) < 0.05
    assert abs(row["age_p99_s"] - np.percentile(ages, 99)) < 0.05


def test_a_sink_without_the_stream_holds_its_frames_at_zero() -> None:
    board, m = _board()
    t = time.time()
    _feed(m["src"], "a", 5, 0.0)
    _feed(m["json"], "a", 5, 0.0)
    for sid, role in (("src", "source"), ("json", "sink"), ("mp4", "sink")):
        board.update(_snap(m[sid], role, t))
    assert board.stream_rows(dropped={})[0]["frames"] == 0


def test_single_url_state_follows_the_stage_and_reconnects_its_counter() -> None:
    board, m = _board()
    t = time.time()
    _feed(m["src"], "cam", 3, 0.0)
    snap = _snap(m["src"], "source", t, url="rtsp://cam", counters={"reconnects": 4.0})
    board.update(snap)
    (row,) = board.stream_rows(dropped={})
    assert (row["state"], row["url"], row["reconnects"]) == ("connecting", "rtsp://cam", 4)  # stage starting
    for stage_state, state in (("running", "up"), ("done", "ended"), ("died", "down")):
        board.set_state("src", stage_state)
        assert board.stream_rows(dropped={})[0]["state"] == state


def test_fps_is_the_rate_between_reports_and_decays_without_frames() -> None:
    board, m = _board()
    t = time.time()
    for k in range(4):  # 30 frames per second at the sink
        _feed(m["json"], "a", 30, 0.0)
        board.update(_snap(m["json"], "sink", t + k))
        _feed(m["src"], "a", 30, 0.0)
        board.update(_snap(m["src"], "source", t + k))
    row = board.stream_rows(dropped={})[0]
    assert abs(row["fps"] - 30) < 1e-6
    board.update(_snap(m["json"], "sink", t + 4))  # a second without frames
    assert abs(board.stream_rows(dropped={})[0]["fps"] - 15) < 1e-6


def test_removed_stream_is_retired_after_the_grace_period_but_kept_for_the_summary() -> None:
    board, m = _board()
    board.book = StreamBook(grace_s=5)
    t = time.time()
    for stream in ("a", "b"):
        _feed(m["src"], stream, 4, 0.0)
        _feed(m["json"], stream, 4, 0.0)
    status = [{"id": "a", "url": "u", "state": "up"}, {"id": "b", "url": "u", "state": "up"}]
    board.update(_snap(m["src"], "source", t, source_streams=status))
    board.update(_snap(m["json"], "sink", t))
    board.update(_snap(m["src"], "source", t + 1, source_streams=status[:1]))  # b removed
    assert {r["id"]: r["state"] for r in board.stream_rows(dropped={})} == {"a": "up", "b": "removed"}
    board.update(_snap(m["src"], "source", t + 7, source_streams=status[:1]))
    assert [r["id"] for r in board.stream_rows(dropped={})] == ["a"]
    final = {r["id"]: r for r in board.stream_rows(final=True, dropped={})}
    assert final["b"]["frames"] == 4 and final["b"]["state"] == "removed"


def test_at_most_max_streams_are_tracked_the_idle_ones_go_first() -> None:
    book = StreamBook(max_streams=8)
    m = StageMetrics("json")
    t = time.time()
    for i in range(20):
        _feed(m, f"s{i:02d}", 1, 0.0)
        snap = _snap(m, "sink", t + i)
        book.update("json", snap)
    rows = book.rows({}, lambda sid: {}, {})
    assert [r["id"] for r in rows] == [f"s{i:02d}" for i in range(12, 20)]
    assert len(book.retired) == 8 and len(book.stages["json"].cells) == 8


def test_bump_keeps_the_most_recent_keys() -> None:
    counts: dict[str, int] = {}
    for i in range(MAX_STREAMS + 10):
        bump(counts, f"s{i}")
    bump(counts, "s500", 4)
    assert len(counts) == MAX_STREAMS and "s0" not in counts and counts["s500"] == 5
    assert list(counts)[-1] == "s500"


def test_tally_bounds_ages_per_report() -> None:
    m = StageMetrics("json")
    now = time.time()
    m.record(5000, 5000, 0.0, [now - 0.5] * 5000, ["a"] * 5000)
    entry = m.snapshot({}, {}, {})["streams"]["a"]
    assert entry["n"] == 5000 and 0 < len(entry["ages"]) <= 256


def test_reservoir_is_a_uniform_sample() -> None:
    res = Reservoir(1024, seed=3)
    res.extend(list(np.linspace(0, 1, 100_000)))  # in order: keeping the first or last ones would show
    sample = res.values()
    assert len(sample) == 1024 and res.n == 100_000
    for q in (50, 95, 99):  # 1024 draws: the sample quantiles are within a few percent of the truth
        assert abs(np.percentile(sample, q) - q / 100) < 0.05


def test_dashboard_shows_a_row_per_stream_capped_to_the_terminal() -> None:
    board, m = _board()
    t = time.time()
    status = [{"id": f"cam{i:02d}", "url": "u", "state": "up" if i % 3 else "down", "reconnects": i}
              for i in range(40)]
    for s in status:
        _feed(m["json"], s["id"], 3, 0.05)
        _feed(m["mp4"], s["id"], 3, 0.05)
    board.update(_snap(m["src"], "source", t, source_streams=status))
    board.update(_snap(m["json"], "sink", t))
    board.update(_snap(m["mp4"], "sink", t))
    reporter = Reporter(board, SimpleNamespace(name="p", metrics=SimpleNamespace(interval_s=1.0)),
                        SimpleNamespace(log_interval_s=None))
    reporter.console = Console(file=io.StringIO(), width=120, height=30, record=True)
    reporter.console.print(reporter.view())
    lines = reporter.console.export_text().splitlines()
    rows = [ln.split() for ln in lines if ln.startswith("cam")]
    assert len(rows) >= 10 and len(lines) <= 30  # what fits: every line on one screen
    assert rows[0][:4] == ["cam00", "down", "3", "0.0"] and rows[0][6:] == ["0", "0"]
    # ages: 50 ms when fed plus the time until `record` reads the clock (51 seen on a loaded machine)
    assert all(50 <= int(age) <= 60 for age in rows[0][4:6])
    assert rows[4][:2] == ["cam04", "up"] and rows[4][-1] == "4"
    assert lines[-1].strip() == f"+{40 - len(rows)} more streams"
    reporter.console = Console(file=io.StringIO(), width=120, height=200, record=True)
    reporter.console.print(reporter.view())
    assert "more streams" not in reporter.console.export_text()


def test_streams_log_line_names_the_worst() -> None:
    rows = [{"id": "a", "state": "up", "fps": 30.0, "age_p99_s": 0.1, "dropped": 0},
            {"id": "b", "state": "up", "fps": 9.8, "age_p99_s": 0.05, "dropped": 2},
            {"id": "c", "state": "down", "fps": 0.0, "age_p99_s": 0.412, "dropped": 10},
            {"id": "d", "state": "connecting", "fps": 0.0, "age_p99_s": None, "dropped": 0}]
    assert streams_line(rows) == "streams: 1 connecting, 1 down, 2 up | slowest b 9.8fps | oldest c p99=412ms" \
                                 " | dropped 12"


def test_a_stream_with_no_known_source_is_retired_when_idle() -> None:
    """A host that runs only the sinks (`--only`): nothing says the stream ended but its silence."""
    book = StreamBook(grace_s=5)
    m = StageMetrics("json")
    t = time.time()
    _feed(m, "a", 3, 0.0)
    book.update("json", _snap(m, "sink", t))
    book.forget(t + 4, {})
    assert [r["id"] for r in book.rows({}, lambda sid: {}, {})] == ["a"]
    book.forget(t + 6, {})
    assert book.rows({}, lambda sid: {}, {}) == [] and book.retired["a"]["frames"] == 3


def test_a_stream_that_ended_without_frames_gets_a_row_until_retired() -> None:
    board, m = _board()
    board.book = StreamBook(grace_s=5)
    t = time.time()
    status = [{"id": "bad", "url": "missing.mp4", "state": "ended", "error": "no such file"}]
    board.update(_snap(m["src"], "source", t, source_streams=status))
    (row,) = board.stream_rows(dropped={})
    assert (row["id"], row["state"], row["frames"], row["error"]) == ("bad", "ended", 0, "no such file")
    board.update(_snap(m["src"], "source", t + 3, source_streams=status))  # no news: the grace runs on
    board.update(_snap(m["src"], "source", t + 6, source_streams=status))
    assert board.stream_rows(dropped={}) == []
    board.update(_snap(m["src"], "source", t + 9, source_streams=status))  # still listed: stays retired
    assert board.stream_rows(dropped={}) == [] and board.stream_rows(final=True, dropped={})[0]["id"] == "bad"


def test_a_sinks_stage_rate_counts_the_frames_it_took_in() -> None:
    board, m = _board()
    t = time.time()
    now = time.time()
    for k in range(3):  # a sink takes frames in and sends none on, as the stage loop records it
        for _ in range(20):
            m["json"].record(1, 0, 0.0, [now], ["a"])
        board.update(_snap(m["json"], "sink", t + k))
    row = next(r for r in board.rows() if r["stage"] == "json")
    assert abs(row["fps"] - 20) < 1e-6


def test_a_streams_row_says_when_its_counted_frames_finished() -> None:
    board, m = _board()
    t = time.time()
    _feed(m["json"], "a", 10, 0.0)
    _feed(m["mp4"], "a", 10, 0.0)
    done = time.time()
    _feed(m["mp4"], "a", 5, 0.0)  # mp4 ahead: the row counts json's 10 and the time of json's tenth
    for sid in ("json", "mp4"):
        board.update(_snap(m[sid], "sink", t))
    (row,) = board.stream_rows(dropped={})
    assert row["frames"] == 10 and row["last_frame_t"] <= done and row["last_frame_t"] > done - 5
