"""Event JSON form, ids (unique, stable), the analytics keys of a frame record, and their JSON Schema."""

from __future__ import annotations

import itertools

import jsonschema
import pytest

from streamyolox.analytics.events import Counts, Event, LineCount, ZoneCount, add_analytics
from streamyolox.detections import FrameMeta, frame_record
from streamyolox.stages.zmq_sink import event_schema, message_schema


def test_json_form_of_a_line_event_and_a_zone_exit() -> None:
    line = Event("line_in", "door", "cam1", 123, 1767225600.5, 7, "person", pts=4.1)
    assert line.to_json() == {"event_id": "cam1:line_in:door:7:123", "kind": "line_in", "line": "door",
                              "stream": "cam1", "frame": 123, "time": 1767225600.5, "pts": 4.1,
                              "track_id": 7, "class_name": "person"}
    exit_ = Event("zone_exit", "bay", "cam1", 200, 1767225603.0, 7, "person", pts=6.6, dwell_s=2.5)
    assert exit_.to_json() == {"event_id": "cam1:zone_exit:bay:7:200", "kind": "zone_exit", "zone": "bay",
                               "stream": "cam1", "frame": 200, "time": 1767225603.0, "pts": 6.6,
                               "track_id": 7, "class_name": "person", "dwell_s": 2.5}
    for e in (line, exit_):
        assert Event.from_json(e.to_json()) == e
        jsonschema.validate(e.to_json(), event_schema())
    with pytest.raises(ValueError, match="event kind"):
        Event.from_json({**line.to_json(), "kind": "line_sideways"})


def test_event_ids_are_distinct_for_distinct_events() -> None:
    # stream ids may hold ':' (names and numbers cannot): still no two events share an id
    streams = ["a", "a:line_in", "a:line_in:b", "cam:1"]
    names = ["b", "door", "line_in"]
    events = [Event(kind, name, stream, frame, 0.0, tid, "person")  # type: ignore[arg-type]
              for stream, kind, name, tid, frame in itertools.product(
                  streams, ["line_in", "line_out", "zone_enter"], names, [1, 12], [2, 21])]
    assert len({e.event_id for e in events}) == len(events)


def test_schema_rejects_malformed_events() -> None:
    good = Event("line_out", "door", "cam1", 5, 1.0, 3, "car").to_json()
    jsonschema.validate(good, event_schema())
    for bad in ({**good, "kind": "line_up"}, {**good, "zone": "bay"}, {**good, "track_id": -1},
                {k: v for k, v in good.items() if k != "line"}, {**good, "extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, event_schema())


def test_frame_record_gets_events_and_counts_only_behind_a_count_stage() -> None:
    meta = FrameMeta(stream="cam1", frame=5, pts=0.2, time=1.0, width=1280, height=720)
    plain = frame_record(meta, None)
    assert add_analytics(dict(plain), [], None) == plain  # no count stage: the record is unchanged
    counts = Counts(lines={"door": LineCount(((640.0, 0.0), (640.0, 720.0)), 3, 1)},
                    zones={"bay": ZoneCount(((0.0, 0.0), (9.0, 0.0), (9.0, 9.0)), 2, 1, {"person": 1})})
    event = Event("line_in", "door", "cam1", 5, 1.0, 3, "person", pts=0.2)
    record = add_analytics(frame_record(meta, None), [event], counts)
    assert record["events"] == [event.to_json()]
    assert record["counts"] == {"door": {"in": 3, "out": 1},
                                "bay": {"enter": 2, "exit": 1, "occupancy": {"person": 1}}}
    jsonschema.validate(record, message_schema())
    assert add_analytics(frame_record(meta, None), [], counts)["events"] == []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "counts": {"door": {"in": -1, "out": 0}}}, message_schema())
