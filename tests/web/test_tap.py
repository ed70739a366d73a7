"""The camera wall's parts without a pipeline: which stage hosts the tap, the tap (copies only watched
streams at the capped rate, draws, scales, never blocks, says when there is no frame), the hub (merges what
clients ask for, hands pictures to MJPEG responses)."""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest
import zmq

from streamyolox.analytics.events import Counts, LineCount, ZoneCount
from streamyolox.detections import Detections, FrameMeta
from streamyolox.draw import class_color
from streamyolox.draw.annotate import LINE_COLOR, ZONE_COLOR
from streamyolox.graph.spec import PipelineSpec, StageSpec
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.packet import Packet
from streamyolox.web.tap import Tap, _Shot, render
from streamyolox.web.wall import MAX_CLIENTS, MAX_WATCHED, WallFull, WallHub, Watch, tap_stage


def _spec(*stages: tuple[str, str, tuple[str, ...], bool]) -> PipelineSpec:
    return PipelineSpec("t", ModelSpec(name="yolox-nano", weights=None),
                        {sid: StageSpec(sid, kind, inputs, is_source=not inputs, is_sink=sink)
                         for sid, kind, inputs, sink in stages})


def test_the_tap_goes_to_the_most_downstream_stage_with_detections() -> None:
    demo = _spec(("src", "decode", (), False), ("pre", "letterbox", ("src",), False),
                 ("det", "yolox", ("pre",), False), ("post", "nms", ("det",), False),
                 ("json", "json", ("post",), True), ("raw", "mp4", ("src",), True))
    assert tap_stage(demo, set(demo.stages)) == "json"  # not the mp4 of raw frames, though a sink too
    assert tap_stage(demo, {"src", "pre", "det", "post"}) == "post"  # --only: the last with detections
    assert tap_stage(demo, {"src", "pre"}) == "pre"  # nothing detects here: the deepest stage
    assert tap_stage(demo, set()) is None
    counting = _spec(("src", "decode", (), False), ("post", "nms", ("src",), False),
                     ("json", "json", ("post",), True), ("trk", "track", ("post",), False),
                     ("cnt", "count", ("trk",), False), ("mp4", "mp4", ("cnt",), True))
    assert tap_stage(counting, set(counting.stages)) == "mp4"  # tracks and counts drawn too


def test_watch_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^width: expected an integer in \[16, 1920\], got 5$"):
        Watch(width=5)
    with pytest.raises(ValueError, match=r"^fps: expected a number in \(0, 30\], got 0$"):
        Watch(fps=0)


def _packet(stream: str, i: int, frame: np.ndarray | None) -> Packet:
    dets = Detections(np.array([[100, 100, 600, 500]], np.float32), [0.9], [0])
    return Packet(FrameMeta(stream=stream, frame=i, time=time.time(), width=1280, height=720), frame=frame,
                  detections=dets)


@pytest.fixture()
def tap_and_sink():
    zctx = zmq.Context()
    sink = zctx.socket(zmq.PULL)
    port = sink.bind_to_random_port("tcp://127.0.0.1")
    tap = Tap(zctx, f"tcp://127.0.0.1:{port}", "json")
    tap.start()
    yield tap, sink
    tap.stop()
    sink.close(linger=0)
    zctx.term()


def _receive(sink: zmq.Socket, timeout_ms: int = 5000) -> tuple[str, dict, np.ndarray]:
    assert sink.poll(timeout_ms), "no picture came"
    stream, header, jpeg = sink.recv_multipart()
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return stream.decode(), json.loads(header), img


def test_the_tap_copies_and_encodes_only_watched_streams(tap_and_sink) -> None:
    tap, sink = tap_and_sink
    frame = np.full((720, 1280, 3), 128, np.uint8)
    tap.offer([_packet("a", 0, frame)])
    assert tap.stats()["taken"] == 0 and not sink.poll(300)  # nobody watches: nothing copied or sent
    tap.watch({"a": {"width": 320, "fps": 2}})
    tap.offer([_packet("b", 1, frame), _packet("a", 2, frame)])
    frame[:] = 0  # the slot is reused at once: the tap must have copied it
    stream, header, img = _receive(sink)
    assert (stream, header["frame"], header["has_frame"], img.shape) == ("a", 2, True, (180, 320, 3))
    assert abs(int(img[170, 300, 1]) - 128) < 8  # the grey of the frame as it was offered, not the zeros
    person = np.array(class_color(0), np.int16)  # the box (scaled by 1/4) and its label, in the class colour
    assert (np.abs(img.astype(np.int16) - person).max(axis=2) < 30).sum() > 50
    for i in range(10):  # within the 0.5 s of fps=2: not taken
        tap.offer([_packet("a", 3 + i, frame)])
    assert tap.stats()["taken"] == 1
    assert not sink.poll(200)
    tap.watch({})
    time.sleep(0.6)
    tap.offer([_packet("a", 20, frame)])
    assert tap.stats()["taken"] == 1 and tap.stats()["watching"] == []


def test_no_frame_is_said_on_the_picture(tap_and_sink) -> None:
    tap, sink = tap_and_sink
    tap.watch({"a": {"width": 320, "fps": 10}})
    tap.offer([_packet("a", 0, None)])
    _, header, img = _receive(sink)
    assert header["has_frame"] is False and img.shape == (180, 320, 3)
    assert img.std() > 5  # dark with a red label saying why
    assert tap.stats()["no_frame"] == 1


def test_a_full_socket_drops_and_never_blocks() -> None:
    zctx = zmq.Context()
    tap = Tap(zctx, "tcp://127.0.0.1:9", "json")  # nobody listens: the queue fills at once
    tap.start()
    try:
        tap.watch({f"s{i}": {"width": 64, "fps": 30} for i in range(12)})
        frame = np.zeros((720, 1280, 3), np.uint8)
        for i in range(12):  # returns although nothing receives (a blocking send would hang here)
            tap.offer([_packet(f"s{i}", 0, frame)])
        deadline = time.monotonic() + 60
        while tap.stats()["encoded"] < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = tap.stats()
        assert stats["encoded"] == 12 and stats["dropped"] > 0 and stats["sent"] + stats["dropped"] == 12
    finally:
        tap.stop()
        zctx.term()


def test_the_hub_merges_clients_and_hands_out_pictures() -> None:
    pushed: list[dict] = []
    zctx = zmq.Context()
    hub = WallHub(zctx, "inproc://wall-test", "tap:json",
                  lambda target, method, kwargs, timeout_s: pushed.append(kwargs["streams"]))
    feed = zctx.socket(zmq.PUSH)
    feed.connect("inproc://wall-test")
    try:
        k1 = hub.watch("a", Watch(width=320, fps=5))
        k2 = hub.watch("a", Watch(width=640, fps=2))
        assert pushed[-1] == {"a": {"width": 640, "fps": 5}}
        parts = hub.mjpeg("b", Watch(width=100, fps=1), alive=lambda: True)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(next(parts)))
        reader.start()
        deadline = time.monotonic() + 5
        while "b" not in pushed[-1] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pushed[-1] == {"a": {"width": 640, "fps": 5}, "b": {"width": 100, "fps": 1}}
        feed.send_multipart([b"b", json.dumps({"frame": 7}).encode(), b"JPEG"])
        reader.join(5)
        assert got and got[0].startswith(b"--syxframe\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n")
        assert got[0].endswith(b"\r\n\r\nJPEG\r\n") and b"X-Frame: 7" in got[0]
        parts.close()  # the client left
        hub.unwatch(k1)
        hub.unwatch(k2)
        assert pushed[-1] == {}
        assert hub.stats()["latest"] == {}  # nobody watches: nothing kept
    finally:
        hub.close()
        feed.close(linger=0)
        zctx.term()


def test_lines_and_zones_are_drawn_where_they_are_at_the_tile_size() -> None:
    counts = Counts(lines={"door": LineCount(((0.0, 360.0), (1280.0, 360.0)), 3, 1)},
                    zones={"bay": ZoneCount(((800.0, 80.0), (1200.0, 80.0), (1200.0, 300.0), (800.0, 300.0)))})
    shot = _Shot(FrameMeta(stream="a"), np.zeros((720, 1280, 3), np.uint8), None, counts, Watch(width=320))
    img = render(shot, "count")
    assert img.shape == (180, 320, 3)

    def near(color: tuple[int, int, int], region: np.ndarray) -> int:
        return int((np.abs(region.astype(np.int16) - np.array(color, np.int16)).max(axis=2) < 40).sum())

    assert near(LINE_COLOR, img[88:93, 10:150]) > 100  # the line at y = 360 / 4, across the tile
    assert near(LINE_COLOR, img[120:180, :]) == 0
    assert near(ZONE_COLOR, img[60:90, 295:305]) > 10  # the zone's right edge at x = 1200 / 4
    assert counts.lines["door"].points == ((0.0, 360.0), (1280.0, 360.0))  # the stage's own counts untouched


def test_the_hub_refuses_beyond_its_limits() -> None:
    zctx = zmq.Context()
    hub = WallHub(zctx, "inproc://wall-limits", "tap:json", lambda *a, **k: None)
    try:
        keys = [hub.watch(f"s{i}", Watch()) for i in range(MAX_WATCHED)]
        with pytest.raises(WallFull, match="at most 64 pictures of 64 streams"):
            hub.mjpeg("one-more", Watch(), alive=lambda: True)  # refused before a response starts
        keys += [hub.watch("s0", Watch()) for _ in range(MAX_CLIENTS - MAX_WATCHED)]
        with pytest.raises(WallFull):
            hub.watch("s1", Watch())
        for key in keys:
            hub.unwatch(key)
        hub.unwatch(hub.watch("s1", Watch()))
    finally:
        hub.close()
        zctx.term()
