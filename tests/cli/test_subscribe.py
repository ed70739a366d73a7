"""`streamyolox subscribe` / `keys` and examples/subscriber.py against a real zmq sink, and the shipped
publish_zmq.yaml end to end: a subscriber started before the run gets one schema-valid message per frame."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from streamyolox.cli.keys import make_key_pair
from streamyolox.detections import Detections, FrameMeta
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from streamyolox.stages.zmq_sink import ZmqSink, message_schema
from tests.conftest import free_endpoint

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def publish(endpoint: str, streams: list[str], n: int, **options: object) -> None:
    """Publish n frames per stream once one subscriber is connected (people on even frames, a car always)."""
    sink = make_stage(ZmqSink, {"endpoint": endpoint, "wait_subscribers": 1, "wait_timeout_s": 30, **options})
    sink.open()
    for i in range(n):
        for stream in streams:
            people = 2 if i % 2 == 0 else 0
            dets = Detections([[0, 0, 10, 10]] * (people + 1), [0.9] * (people + 1), [0] * people + [2])
            sink.process(Packet(FrameMeta(stream, i, i / 30, 0.0, 64, 48), None, detections=dets))
    sink.close()


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=ENV, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_json_lines_one_per_message_with_exact_topic_filter() -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--topic", "cam1", "--count", "10", "--timeout", "20")
    publish(endpoint, ["cam1", "cam10"], 10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in records] == list(range(10)) and {r["stream"] for r in records} == {"cam1"}
    for r in records:
        jsonschema.validate(r, message_schema())
    assert "10 messages, 0 frames missed" in err


def test_msgpack_payloads_are_printed_as_json() -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--count", "3", "--timeout", "20")
    publish(endpoint, ["a"], 3, format="msgpack", thumbnail=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [json.loads(line)["schema_version"] for line in out.splitlines()] == [1, 1, 1]


def test_table_counts_detections_per_class() -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--table", "--count", "20", "--timeout", "20")
    publish(endpoint, ["cam"], 20)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = {line.split("│")[2].strip(): [c.strip() for c in line.split("│")[3:6]]
            for line in out.splitlines() if line.count("│") >= 6 and "cam" in line}
    # last frame (19, odd): no people; per frame 1.00 people (2 on half the frames); 20 cars in total
    assert rows["person"] == ["0", "1.00", "20"] and rows["car"] == ["1", "1.00", "20"]


def test_timeout_before_count_exits_1() -> None:
    proc = start("-m", "streamyolox", "subscribe", free_endpoint(), "--count", "1", "--timeout", "0.5")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "0 messages" in err


def test_example_subscriber_prints_people_per_frame() -> None:
    endpoint = free_endpoint()
    proc = start(str(REPO / "examples" / "subscriber.py"), endpoint, "cam", "4")
    publish(endpoint, ["cam"], 4)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"cam frame {i}: {3 if i % 2 == 0 else 1} objects, {2 if i % 2 == 0 else 0} people"
                                for i in range(4)]


def test_curve_subscriber_through_the_cli(tmp_path: Path) -> None:
    server_pub, server_secret = make_key_pair(tmp_path, "server")
    _, client_secret = make_key_pair(tmp_path / "clients", "alice")
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--count", "5", "--timeout", "20",
                 "--curve-server-key", str(server_pub), "--curve-client-key", str(client_secret))
    publish(endpoint, ["cam"], 5, curve_server_secret_key=str(server_secret),
            curve_allowed_clients=str(tmp_path / "clients"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert len(out.splitlines()) == 5


def test_keys_makes_a_private_pair_and_never_overwrites(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "streamyolox", "keys", str(tmp_path / "k"), "--name", "server"]
    first = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    secret = tmp_path / "k" / "server.key_secret"
    assert (tmp_path / "k" / "server.key").exists() and stat.S_IMODE(secret.stat().st_mode) == 0o600
    before = secret.read_bytes()
    again = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "not overwriting" in again.stderr and len(again.stderr.splitlines()) == 1
    assert secret.read_bytes() == before


@pytest.mark.slow
def test_shipped_publish_zmq_pipeline_one_valid_message_per_frame(street_720p: Path, nano_pth: Path) -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--count", "300", "--timeout", "120")
    # block edges: a file loses no frame; wait_subscribers: the subscriber above is connected first
    sets = [f"stages.{s}.policy=block" for s in ("pre", "detect", "post", "zmq")] + [
        f"stages.source.url={street_720p}", f"model.weights={nano_pth}", f"stages.zmq.endpoint={endpoint}",
        "stages.zmq.wait_subscribers=1"]
    cmd = [sys.executable, "-m", "streamyolox", "run", str(REPO / "pipelines" / "publish_zmq.yaml"),
           "--no-dashboard", *[a for s in sets for a in ("--set", s)]]
    try:
        run = subprocess.run(cmd, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in records] == list(range(300))
    for r in records:
        jsonschema.validate(r, message_schema())
    assert sum(len(r["detections"]) for r in records) > 300


def _events_publish(endpoint: str, n: int) -> list[dict]:
    """n frames of stream cam through a real zmq sink; frame 3 carries a line crossing, frame 5 a zone
    enter and the last a zone exit (as a count stage attaches them); returns the events' JSON."""
    from streamyolox.analytics.events import Event

    sink = make_stage(ZmqSink, {"endpoint": endpoint, "wait_subscribers": 1, "wait_timeout_s": 30})
    sink.open()
    sent = []
    for i in range(n):
        events = []
        if i == 3:
            events.append(Event("line_in", "door", "cam", i, 0.0, 7, "person", pts=i / 30))
        if i == 5:
            events.append(Event("zone_enter", "bay", "cam", i, 0.0, 7, "person", pts=i / 30))
        if i == n - 1:
            events.append(Event("zone_exit", "bay", "cam", i, 0.0, 7, "person", pts=i / 30, dwell_s=1.25))
        sent += [e.to_json() for e in events]
        dets = Detections([[0, 0, 10, 10]], [0.9], [0], [7])
        sink.process(Packet(FrameMeta("cam", i, i / 30, 0.0, 64, 48), None, detections=dets, events=events))
    sink.close()
    return sent


def test_event_messages_are_counted_apart_from_frames_and_printed() -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--topic", "cam", "--count", "10", "--timeout", "20")
    sent = _events_publish(endpoint, 10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    frames = [r for r in lines if "event_id" not in r]
    events = [{k: v for k, v in r.items() if k != "schema_version"} for r in lines if "event_id" in r]
    # --topic cam brings its events/cam topic too; --count counts frames, and frames have no gap
    assert [r["frame"] for r in frames] == list(range(10)) and events == sent
    assert "10 messages, 0 frames missed, 3 events (cam bay enter 1 exit 1; cam door in 1)" in err


def test_no_events_leaves_the_event_topic_out() -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--no-events", "--count", "10", "--timeout", "20")
    _events_publish(endpoint, 10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert all("event_id" not in json.loads(line) for line in out.splitlines()) and len(out.splitlines()) == 10
    assert "events" not in err


def test_table_shows_event_totals_and_the_latest_events_in_words() -> None:
    endpoint = free_endpoint()
    proc = start("-m", "streamyolox", "subscribe", endpoint, "--table", "--count", "10", "--timeout", "20")
    _events_publish(endpoint, 10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = {tuple(c.strip() for c in line.split("│")[1:3]): [c.strip() for c in line.split("│")[3:7]]
            for line in out.splitlines() if line.count("│") >= 7}
    assert rows[("cam", "door")] == ["1", "0", "0", "0"] and rows[("cam", "bay")] == ["0", "0", "1", "1"]
    assert "cam frame 3: person #7 crossed door (in)" in out
    assert "cam frame 9: person #7 left bay after 1.2 s" in out or "cam frame 9: person #7 left bay after 1.3 s" in out
