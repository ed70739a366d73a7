"""End to end: pipelines/count_people.yaml on the 720p street pan (real detections, real tracks) with a real
mosquitto broker. The JSON's counts equal its events, the events equal a recomputation from the JSON's
own track positions (written here from the rules, not with the counter's code), the MQTT subscriber got
exactly those events, and the MP4 shows the lines.

The pan moves people by about 100 px over the clip, so one mid-frame line would see no crossing: the test
puts a vertical line every 80 px across the frame (x = 80 .. 1200, so mid-frame too).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import av
import numpy as np

from streamyolox.draw.annotate import LINE_COLOR
from tests.pipelines.test_demo_pipeline import REPO, run_pipeline
from tests.stages.mqtt_broker import Broker, Subscriber

XS = list(range(80, 1280, 80))
LINES = {f"x{x}": [[x, 0], [x, 720]] for x in XS}
MIN_DISTANCE, MIN_FRAMES, COOLDOWN_S, TIMEOUT_S = 5.0, 2, 1.0, 5.0


def _crosses(p: tuple[float, float], q: tuple[float, float], x: float) -> bool:
    """The step p -> q meets the vertical segment x, y in [0, 720]."""
    if (p[0] - x) * (q[0] - x) > 0:
        return False
    if p[0] == q[0]:
        return p[0] == x and min(p[1], q[1]) <= 720 and max(p[1], q[1]) >= 0
    y = p[1] + (q[1] - p[1]) * (x - p[0]) / (q[0] - p[0])
    return 0 <= y <= 720


def recompute(records: list[dict]) -> list[tuple[int, str, str, int]]:
    """(frame, kind, line, track) of every crossing, from the records' track boxes (bottom center)."""
    out = []
    last: dict[int, tuple[float, float, float]] = {}  # track -> (t, x, y) of its previous observation
    state: dict[tuple[int, int], dict] = defaultdict(lambda: {"side": 0, "run": [], "crossed": False, "at": {}})
    for r in records:
        t, seen = r["pts"], set()
        for d in sorted(r["detections"], key=lambda d: -d["score"]):
            tid = d["track_id"]
            if tid is None or d["class_name"] != "person" or tid in seen:
                continue
            seen.add(tid)
            x1, _, x2, y2 = d["bbox"]
            here = ((x1 + x2) / 2, y2)
            prev = last.get(tid)
            if prev is not None and t - prev[0] > TIMEOUT_S:
                prev = None
                for x in XS:
                    state.pop((tid, x), None)
            for x in XS:
                s = state[(tid, x)]
                if prev is not None and _crosses(prev[1:], here, x):
                    s["crossed"] = True
                # the side with the band: +1 left of the line ((B - A) x (P - A) > 0 for A above B), -1 right
                side = 1 if here[0] <= x - MIN_DISTANCE else -1 if here[0] >= x + MIN_DISTANCE else 0
                if side == 0 or side == s["side"]:
                    s["run"] = []
                    if side != 0:
                        s["crossed"] = False
                    continue
                s["run"] = [*s["run"], side] if s["run"][-1:] == [side] else [side]
                if len(s["run"]) < MIN_FRAMES:
                    continue
                old, s["side"], s["run"], crossed, s["crossed"] = s["side"], side, [], s["crossed"], False
                kind = "line_in" if old == 1 else "line_out"
                if old == 0 or not crossed or t - s["at"].get(kind, -1e9) < COOLDOWN_S:
                    continue
                s["at"][kind] = t
                out.append((r["frame"], kind, f"x{x}", tid))
            last[tid] = (t, *here)
    return sorted(out)


def test_count_people_on_a_real_video(tmp_path: Path, street_720p: Path, nano_pth: Path) -> None:
    broker = Broker(tmp_path, "broker").start()
    sub = Subscriber(broker.port)
    try:
        out, mp4, metrics = tmp_path / "count.jsonl", tmp_path / "count.mp4", tmp_path / "metrics.json"
        result = run_pipeline(REPO / "pipelines" / "count_people.yaml", f"stages.source.url={street_720p}",
                              f"model.weights={nano_pth}", f"stages.json.path={out}", f"stages.mp4.path={mp4}",
                              f"stages.count.lines={json.dumps(LINES)}", f"stages.mqtt.port={broker.port}",
                              f"metrics.json={metrics}")
        assert result.returncode == 0, result.stderr[-3000:]
        records = [json.loads(line) for line in out.read_text().splitlines()]
        n_events = sum(len(r["events"]) for r in records)
        mqtt_events = sub.wait_for(n_events, "/events")
        mqtt_dets = sub.received("/detections")
    finally:
        sub.close()
        broker.stop()
    assert len(records) == 300
    events = [e for r in records for e in r["events"]]
    print(f"{len(events)} events:", sorted((e["kind"], e["line"], e["track_id"]) for e in events))
    assert len(events) >= 4, "the pan should carry people over some of the lines"

    # running counts = the events so far, line by line, on every frame
    totals = {name: {"in": 0, "out": 0} for name in LINES}
    for r in records:
        for e in r["events"]:
            totals[e["line"]]["in" if e["kind"] == "line_in" else "out"] += 1
        assert r["counts"] == totals, f"frame {r['frame']}"

    # the events are what the rules give on the JSON's own track positions
    assert sorted((e["frame"], e["kind"], e["line"], e["track_id"]) for e in events) == recompute(records)
    assert all(e["event_id"] == f"source:{e['kind']}:{e['line']}:{e['track_id']}:{e['frame']}" for e in events)
    assert len({e["event_id"] for e in events}) == len(events)

    # MQTT: every event (QoS 1) once per id, and the detection messages the sink sent (QoS 0)
    assert sorted({m[2]["event_id"] for m in mqtt_events}) == sorted(e["event_id"] for e in events)
    assert {m[0] for m in mqtt_events} == {"streamyolox/source/events"}
    stages = {s["stage"]: s for s in json.loads(metrics.read_text())["stages"]}
    mq = stages["mqtt"]["counters"]
    assert mq["events_acked"] == len(events) and "events_lost" not in mq and "events_dropped" not in mq
    assert mq["detections_sent"] + mq.get("detections_dropped", 0) == 300
    assert len(mqtt_dets) == mq["detections_sent"] >= 290
    assert [m[2]["frame"] for m in mqtt_dets] == sorted(m[2]["frame"] for m in mqtt_dets)
    counted = stages["count"]["counters"]
    assert counted.get("line_in", 0) + counted.get("line_out", 0) == len(events)

    # the MP4: 300 frames with the amber lines drawn (the source has no such column)
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    with av.open(str(street_720p)) as container:
        source = next(container.decode(video=0)).to_ndarray(format="bgr24")
    assert len(frames) == 300

    def amber_rows(img: np.ndarray, x: int) -> float:
        near = (np.abs(img[40:680, x - 4:x + 5].astype(int) - np.array(LINE_COLOR)) <= 40).all(axis=2)
        return float(near.any(axis=1).mean())

    assert min(amber_rows(frames[150], x) for x in XS) > 0.6
    assert max(amber_rows(source, x) for x in XS) < 0.2
