"""Many streams in one `decode` stage against real GStreamer RTSP servers: a camera killed for good while the
others run, and a live stream that keeps its newest frames behind a slow consumer while a file loses none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from tests.sources.conftest import RtspServer, free_port, gst_rtsp_missing
from tests.stages.test_decode_streams import by_stream, digest, reference_digests

LIVE = {"open_timeout_s": 3, "read_timeout_s": 2, "stall_timeout_s": 2, "backoff_initial_s": 0.2,
        "backoff_max_s": 0.5}


@pytest.fixture(scope="module")
def street_ref(street_720p: Path) -> list[str]:
    return reference_digests(street_720p)


@pytest.fixture(scope="module")
def dog_480p() -> Path:
    from tests.conftest import shared_file

    return shared_file("media", "dog_pan_480p.mp4")


@pytest.fixture
def second_server(street_720p: Path) -> Iterator[RtspServer]:
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    server = RtspServer(street_720p, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def assert_live_frames(packets: list[Packet], status: dict, ref: list[str], decoded: int | None = None,
                       handed_out: int | None = None) -> None:
    """A live stream's frames: in order, each whole and equal to the clip's frame of its index, and every
    decoded frame either handed out or counted as dropped."""
    frames = [p.meta.frame for p in packets]
    assert frames == sorted(set(frames)), frames
    assert [digest(p.frame) for p in packets] == [ref[i] for i in frames]
    handed_out = len(packets) if handed_out is None else handed_out
    assert status["frames"] == handed_out, status
    assert status["frames"] + status["dropped"] == status["decoded"], status
    if decoded is not None:
        assert status["decoded"] == decoded, status


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_camera_killed_for_good_while_the_others_run(rtsp_server: RtspServer, second_server: RtspServer,
                                                     dog_480p: Path, street_ref: list[str]) -> None:
    streams = {"doomed": {"url": rtsp_server.url, "max_retries": 2, **LIVE},
               "steady": {"url": second_server.url, "reconnect": False, **LIVE},
               "file": str(dog_480p)}
    stage = make_stage(DecodeStage, {"streams": streams, "threads": 1}, stage_id="cams")
    stage.open()
    packets: list[Packet] = []
    killed_at = None
    for p in stage.generate():  # ends by itself: the file ended, `steady` ended, `doomed` is down
        packets.append(p)
        if killed_at is None and sum(q.meta.stream == "doomed" for q in packets) == 45:
            rtsp_server.kill()
            killed_at = time.monotonic()
    stage.close()
    assert killed_at is not None
    got = by_stream(packets)
    status = {s["id"]: s for s in stage.streams_status()}
    assert status["doomed"]["state"] == "down", status["doomed"]
    assert "gave up after 2 reconnect attempts" in status["doomed"]["error"]
    assert status["steady"]["state"] == status["file"]["state"] == "ended"
    # The file loses nothing. The cameras are live: a consumer slowed by a loaded machine makes them drop their
    # oldest buffered frame (CI once lost frame 45 of `doomed` so), and every frame not handed out is counted.
    assert [p.meta.frame for p in got["file"]] == list(range(150))
    assert_live_frames(got["steady"], status["steady"], street_ref, decoded=len(street_ref))
    # The kill may cut the last frame short (FFmpeg conceals what is missing): all before it are whole.
    assert_live_frames(got["doomed"][:-1], status["doomed"], street_ref, handed_out=len(got["doomed"]))
    doomed = got["doomed"]
    assert all(p.meta.extra["reconnects"] == 0 for p in doomed + got["steady"])
    assert stage.ctx.counters["reconnect_attempts"] == 2


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_live_stream_keeps_its_newest_frames_a_file_loses_none(rtsp_server: RtspServer, dog_480p: Path,
                                                               street_ref: list[str]) -> None:
    dog_ref = reference_digests(dog_480p)
    streams = {"cam": {"url": rtsp_server.url, "reconnect": False, **LIVE}, "file": str(dog_480p)}
    stage = make_stage(DecodeStage, {"streams": streams, "threads": 1})
    stage.open()
    packets: list[Packet] = []
    ages: list[float] = []
    for p in stage.generate():
        packets.append(p)
        if p.meta.stream == "cam":
            ages.append(time.time() - p.meta.time)
        time.sleep(0.04)  # 25 frames/s for both streams together: slower than the 30 fps camera alone
    stage.close()
    got = by_stream(packets)
    cam = {s["id"]: s for s in stage.streams_status()}["cam"]
    assert [digest(p.frame) for p in got["file"]] == dog_ref, "a file stream loses nothing"
    frames = [p.meta.frame for p in got["cam"]]
    assert frames == sorted(set(frames)) and frames[-1] >= 295, frames[-5:]  # in order; the newest win
    assert cam["frames"] == len(frames) and cam["frames"] + cam["dropped"] == cam["decoded"] == 300
    assert cam["dropped"] >= 60, cam  # counted, never queued up
    assert [digest(p.frame) for p in got["cam"]] == [street_ref[i] for i in frames]
    # Fresh: at most its 2 buffered frames behind (~0.2 s here; a blocking reader would fall ~5 s behind).
    assert sorted(ages)[int(0.95 * len(ages))] < 0.6, [round(a, 2) for a in ages]
    assert stage.ctx.counters["source_dropped"] == cam["dropped"]


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_camera_added_and_removed_while_generating(rtsp_server: RtspServer, dog_480p: Path,
                                                   street_ref: list[str]) -> None:
    from tests.stages.test_decode_streams import Consumer, wait_for

    stage = make_stage(DecodeStage, {"streams": {"file": {"url": str(dog_480p), "loop": True}}, "threads": 1})
    stage.open()
    with Consumer(stage) as consumer:
        wait_for(lambda: consumer.count("file") >= 30)
        assert stage.add_stream("cam", {"url": rtsp_server.url, **LIVE})["state"] == "connecting"
        wait_for(lambda: consumer.count("cam") >= 60)
        status = {s["id"]: s for s in stage.streams_status()}
        assert status["cam"]["state"] == "up" and status["cam"]["live"] and not status["file"]["live"]
        removed = stage.remove_stream("cam")
        wait_for(lambda: consumer.count("cam") >= removed["frames"], timeout=10)  # what was emitted drains
        time.sleep(0.5)  # and then nothing more of the camera comes
        # a live stream drops its oldest behind a slower consumer: indices may have gaps, none past the last
        assert consumer.count("cam") == removed["frames"]
        assert max(p.meta.frame for p in consumer.packets if p.meta.stream == "cam") == removed["last_frame"]
        stage.remove_stream("file")
        consumer.join(30)
        assert not consumer.is_alive() and consumer.error is None
    stage.close()
    cam = by_stream(consumer.packets)["cam"]
    frames = [p.meta.frame for p in cam]
    assert frames == sorted(set(frames)) and frames[0] < 30  # a live stream keeps its newest: gaps allowed
    assert [p.digest for p in cam] == [street_ref[i] for i in frames]
    assert all(t.name != "cam-reader" for t in threading.enumerate()), "the removed camera's reader stopped"
