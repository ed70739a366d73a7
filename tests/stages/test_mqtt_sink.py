"""mqtt sink against a real mosquitto: topics and QoS, the broker killed and restarted mid-run loses no
event, the bounded buffer drops and counts, close() reports what was never acknowledged, TLS + login,
and one-line option errors.

Where the broker is killed, the subscriber sits on a second broker that the first one bridges to (both
on 127.0.0.1, persistence off): a subscriber on the killed broker itself would lose its subscription with
it and miss what arrives before it re-subscribes, whatever the publisher does. The bridge is part of the
killed broker's config, so it exists from the moment that broker starts again. An event the killed
broker had acknowledged but not yet forwarded would die with it (persistence off); the kill waits until
what was sent so far went through, so every event the test expects is the sink's to keep.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from streamyolox.analytics.events import Counts, Event, LineCount
from streamyolox.detections import Detections, FrameMeta
from streamyolox.graph.validate import SpecError, parse_pipeline
from streamyolox.stages.mqtt_sink import MqttSink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from streamyolox.stages.zmq_sink import event_schema, message_schema
from tests.stages.mqtt_broker import Broker, Subscriber, free_port

DOOR = ((640.0, 0.0), (640.0, 720.0))


def packets(n: int, stream: str = "cam1") -> list[Packet]:
    """n tracked frames, each carrying one event (track i crossing `door`, alternating in and out)."""
    out = []
    for i in range(n):
        meta = FrameMeta(stream, i, i / 30, 1.7e9 + i / 30, 1280, 720)
        dets = Detections([[600, 300, 680, 500]], [0.9], [0], [i + 1])
        kind = "line_in" if i % 2 == 0 else "line_out"
        event = Event(kind, "door", stream, i, meta.time, i + 1, "person", pts=meta.pts)  # type: ignore[arg-type]
        counts = Counts(lines={"door": LineCount(DOOR, i // 2 + 1, (i + 1) // 2)})
        out.append(Packet(meta, detections=dets, events=[event], counts=counts))
    return out


def bridge_to(port: int) -> str:
    return (f"connection to_stable\naddress 127.0.0.1:{port}\ntopic streamyolox/# out 1\n"
            "cleansession false\nnotifications false\nrestart_timeout 1\n")


def wait_bridge(flaky: Broker, sub: Subscriber) -> None:
    """Publish probes on the flaky broker until one reaches the subscriber through the bridge."""
    sink = make_stage(MqttSink, {"port": flaky.port, "detections_topic": None, "close_timeout_s": 5})
    sink.open()
    probe = packets(1, stream="probe")[0]
    for _ in range(100):
        sink.process(probe)
        if sub.wait_for(1, "probe/events", timeout_s=0.2):
            break
    sink.close()
    assert sub.received("probe/"), "the bridge never forwarded"


@pytest.fixture()
def bridged(tmp_path: Path):
    stable = Broker(tmp_path, "stable").start()
    flaky = Broker(tmp_path, "flaky", extra=bridge_to(stable.port))
    sub = Subscriber(stable.port)
    yield flaky, sub
    sub.close()
    flaky.stop()
    stable.stop()


def event_ids(got: list) -> list[str]:
    return [m[2]["event_id"] for m in got if "probe" not in m[0]]


def test_topics_qos_and_payloads(tmp_path: Path) -> None:
    broker = Broker(tmp_path, "b").start()
    sub = Subscriber(broker.port, "site/#")
    try:
        sent = packets(10)
        sink = make_stage(MqttSink, {"port": broker.port, "detections_topic": "site/{stream}/dets",
                                     "events_topic": "site/{stream}/events"})
        sink.open()
        for p in sent:
            sink.process(p)
        sink.close()
        events = sub.wait_for(10, "/events")
        dets = sub.wait_for(10, "/dets")
    finally:
        sub.close()
        broker.stop()
    assert [m[0] for m in events] == ["site/cam1/events"] * 10
    assert [m[2] for m in events] == [{**p.events[0].to_json(), "schema_version": 1} for p in sent]
    assert {m[1] for m in events} == {1}  # QoS 1 end to end (the subscription is QoS 1)
    assert [m[0] for m in dets] == ["site/cam1/dets"] * 10 and {m[1] for m in dets} == {0}
    for (_, _, record), p in zip(dets, sent):
        jsonschema.validate(record, message_schema())
        assert record["frame"] == p.meta.frame and record["events"] == [p.events[0].to_json()]
        assert record["counts"] == p.counts.to_json() and record["detections"][0]["track_id"] == p.meta.frame + 1
    for _, _, event in events:
        jsonschema.validate(event, event_schema())
    c = sink.ctx.counters
    assert (c["events_acked"], c["detections_sent"], c["events_pending"]) == (10, 10, 0)
    assert "events_lost" not in c and "events_dropped" not in c


def test_broker_killed_and_restarted_mid_run_loses_no_event(bridged) -> None:
    flaky, sub = bridged
    flaky.start()
    wait_bridge(flaky, sub)
    sent = packets(120)
    sink = make_stage(MqttSink, {"port": flaky.port, "reconnect_min_s": 1, "reconnect_max_s": 2,
                                 "close_timeout_s": 30})
    sink.open()
    pending_in_outage = []
    for i, p in enumerate(sent):
        if i == 40:
            # what the broker acknowledged but had not yet forwarded dies with it (persistence off): no
            # client can help that, so the kill comes once the first 40 are through
            assert len(set(event_ids(sub.wait_for(40, "cam1/events")))) == 40
            flaky.kill()  # events 40.. are published while the broker is dead
        if i == 80:
            flaky.start()
        sink.process(p)
        if 40 < i < 80:
            pending_in_outage.append(sink.ctx.counters["events_pending"])
        time.sleep(0.02)
    sink.close()
    got = sub.wait_for(len(sent), "cam1/events")
    ids = event_ids(got)
    assert set(ids) == {p.events[0].event_id for p in sent}  # every event arrived (QoS 1: maybe twice)
    assert len(ids) - len(set(ids)) <= 20  # only resends of what the dead broker had not acknowledged
    c = sink.ctx.counters
    assert c["disconnects"] >= 1 and c["events_acked"] == 120 and c["events_pending"] == 0
    assert "events_lost" not in c and "events_dropped" not in c
    assert max(pending_in_outage) >= 30  # they were held by the sink while the broker was away
    assert c["detections_dropped"] >= 30  # QoS 0 while disconnected: dropped and counted, not queued


def test_bounded_buffer_drops_and_counts_then_delivers_what_it_kept(bridged) -> None:
    flaky, sub = bridged
    sent = packets(20)
    sink = make_stage(MqttSink, {"port": flaky.port, "connect_timeout_s": 0.2, "max_pending_events": 5,
                                 "reconnect_min_s": 1, "reconnect_max_s": 1, "close_timeout_s": 20})
    sink.open()  # no broker yet: it warns and buffers
    for p in sent:
        sink.process(p)
    assert sink.ctx.counters["events_dropped"] == 15 and sink.ctx.counters["events_pending"] == 5
    flaky.start()
    sink.close()
    ids = set(event_ids(sub.wait_for(5, "cam1/events")))
    assert ids == {p.events[0].event_id for p in sent[:5]}  # the first five were kept, the rest dropped
    assert sink.ctx.counters["events_acked"] == 5 and "events_lost" not in sink.ctx.counters


def test_close_reports_events_never_acknowledged(caplog: pytest.LogCaptureFixture) -> None:
    sink = make_stage(MqttSink, {"port": free_port(), "connect_timeout_s": 0.1, "close_timeout_s": 0.3})
    sink.open()
    for p in packets(3):
        sink.process(p)
    with caplog.at_level(logging.WARNING):
        t0 = time.monotonic()
        sink.close()
    assert time.monotonic() - t0 < 3
    assert sink.ctx.counters["events_lost"] == 3 and sink.ctx.counters["detections_dropped"] == 3
    assert "3 events not acknowledged" in caplog.text and "cam1:line_in:door:1:0" in caplog.text


@pytest.fixture()
def tls_broker(tmp_path: Path):
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs openssl and mosquitto_passwd")

    def run(*cmd: str) -> None:
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=streamyolox test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    run("mosquitto_passwd", "-b", "-c", "passwords", "camera", "s3cret")
    extra = (f"cafile {tmp_path / 'ca.pem'}\ncertfile {tmp_path / 'server.pem'}\nkeyfile {tmp_path / 'server.key'}\n"
             f"password_file {tmp_path / 'passwords'}")
    broker = Broker(tmp_path, "tls", extra=extra, anonymous=False).start()
    yield broker, str(tmp_path / "ca.pem")
    broker.stop()


def test_tls_and_login(tls_broker) -> None:
    broker, ca = tls_broker
    sub = Subscriber(broker.port, ca_certs=ca, username="camera", password="s3cret")
    try:
        options = {"port": broker.port, "tls": True, "ca_certs": ca, "username": "camera", "password": "s3cret"}
        sink = make_stage(MqttSink, options)
        sink.open()
        for p in packets(4):
            sink.process(p)
        sink.close()
        assert len(set(event_ids(sub.wait_for(4, "/events")))) == 4
        bad = make_stage(MqttSink, {**options, "password": "wrong"})
        with pytest.raises(ValueError, match=rf"^mqtt.username: broker 127.0.0.1:{broker.port} refused the login"):
            bad.open()
    finally:
        sub.close()


@pytest.mark.parametrize(("options", "message"), [
    ({"events_topic": "a/+/events"}, "stages.mqtt.events_topic: expected a topic without wildcards"),
    ({"detections_topic": "a/{camera}"}, "stages.mqtt.detections_topic: only {stream} may appear"),
    ({"password": "x"}, "stages.mqtt.password: needs a username"),
    ({"tls": True, "certfile": "c.pem"}, "stages.mqtt.certfile: certfile and keyfile go together"),
    ({"ca_certs": "ca.pem"}, "stages.mqtt.ca_certs: needs tls: true"),
    ({"tls": True, "ca_certs": "/no/ca.pem"}, "stages.mqtt.ca_certs: no such file '/no/ca.pem'"),
    ({"reconnect_min_s": 5, "reconnect_max_s": 2}, "stages.mqtt.reconnect_max_s: expected >= reconnect_min_s"),
    ({"port": 0}, "stages.mqtt.port: expected an int in [1, 65535], got 0"),
    ({"max_pending_events": 0}, "stages.mqtt.max_pending_events: expected an int in [1, 60000], got 0"),
])
def test_option_errors_are_one_line_naming_the_option(options: dict, message: str) -> None:
    doc = {"stages": {"src": {"kind": "decode", "url": "clip.mp4"},
                      "mqtt": {"kind": "mqtt", "inputs": ["src"], **options}}}
    with pytest.raises(SpecError) as info:
        parse_pipeline(doc)
    text = str(info.value).replace("stages.mqtt: ", "stages.mqtt.")
    assert text.startswith(message) and "\n" not in text, text


def test_stream_ids_with_wildcards_still_publish() -> None:
    from streamyolox.stages.mqtt_sink import topic_for

    assert topic_for("streamyolox/{stream}/events", "cam+1#") == "streamyolox/cam_1_/events"
    assert np.all([topic_for("x/{stream}", s).count("/") == 1 for s in ("a", "b_c")])
