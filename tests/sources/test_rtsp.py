"""Live sources against a real RTSP server (GStreamer) and against ports that refuse or never answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.sources import SourceError, SourceRejected
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage


@pytest.fixture(scope="module")
def reference(street_720p: Path) -> list[np.ndarray]:
    with av.open(str(street_720p)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def live_stage(url: str, **options: object) -> DecodeStage:
    opts = {"url": url, "open_timeout_s": 3, "read_timeout_s": 2, "stall_timeout_s": 2,
            "backoff_initial_s": 0.2, "backoff_max_s": 1.0, **options}
    stage = make_stage(DecodeStage, opts, stage_id="cam")
    stage.open()
    return stage


@pytest.mark.rtsp
def test_all_frames_arrive_over_rtsp(rtsp_server, reference: list[np.ndarray]) -> None:
    stage = live_stage(rtsp_server.url, reconnect=False)
    packets = list(stage.generate())
    stage.close()
    assert len(packets) == 300, f"got {len(packets)} frames over RTSP, the file has 300"
    for i, p in enumerate(packets):
        assert p.meta.frame == i and p.meta.stream == "cam"
        assert np.array_equal(p.frame, reference[i]), f"RTSP frame {i} differs from the file's frame {i}"
    pts = [p.meta.pts for p in packets[1:]]  # RTP gives the first frame no PTS yet
    assert np.allclose(np.diff(pts), 1 / 30, atol=1e-3)
    span = packets[-1].meta.time - packets[0].meta.time
    assert 8.0 < span < 12.0, f"a live 30 fps source should take ~10 s for 300 frames, took {span:.1f}"


def take(gen: Iterator[Packet], n: int) -> list[Packet]:
    return [next(gen) for _ in range(n)]


@pytest.mark.rtsp
def test_server_killed_and_restarted_reconnects(rtsp_server, reference: list[np.ndarray]) -> None:
    stage = live_stage(rtsp_server.url, max_retries=None)
    gen = stage.generate()
    before = take(gen, 60)
    rtsp_server.kill()
    outage = 3.0
    restart = threading.Timer(outage, rtsp_server.start)
    restart.start()
    try:
        after = take(gen, 60)  # blocks through the outage: the stage reconnects by itself
    finally:
        restart.join()
    stage.close()
    c = stage.ctx.counters
    print(f"kill/restart after {outage} s: {c}")
    assert c["reconnects"] == 1 and c["reconnect_attempts"] >= 1
    assert c["last_reconnect_gap_s"] >= outage - 0.5, c
    frames = before + after
    assert [p.meta.frame for p in frames] == list(range(120)), "the frame index continues"
    times = np.array([p.meta.time for p in frames])
    jump = int(np.argmax(np.diff(times))) + 1  # first frame from the new connection
    assert times[jump] - times[jump - 1] == pytest.approx(c["last_reconnect_gap_s"], abs=0.5)
    # Up to the kill: the file's frames in order; from the restart: the file again from its first frame.
    assert all(np.array_equal(p.frame, reference[p.meta.frame]) for p in frames[:jump])
    assert all(np.array_equal(p.frame, reference[i]) for i, p in enumerate(frames[jump:]))


@pytest.mark.rtsp
def test_hung_server_is_detected_and_reconnected(rtsp_server) -> None:
    """SIGSTOP leaves the TCP connection open but silent: the read timeout must break the hung read."""
    stage = live_stage(rtsp_server.url, stall_timeout_s=1.5, read_timeout_s=1.5, open_timeout_s=1.5)
    gen = stage.generate()
    take(gen, 30)
    rtsp_server.pause(True)
    resume = threading.Timer(4.0, rtsp_server.pause, args=(False,))
    resume.start()
    started = time.monotonic()
    try:
        take(gen, 30)
    finally:
        resume.join()
    stage.close()
    c = stage.ctx.counters
    assert c["reconnects"] == 1 and c.get("stalls", 0) + c.get("disconnects", 0) >= 1
    assert time.monotonic() - started < 20


def test_refused_port_gives_up_after_max_retries(closed_port: int) -> None:
    url = f"rtsp://127.0.0.1:{closed_port}/stream"
    stage = live_stage(url, max_retries=2, backoff_initial_s=0.05)
    with pytest.raises(SourceError, match="gave up after 2 reconnect attempts") as info:
        list(stage.generate())
    stage.close()
    assert "\n" not in str(info.value) and url in str(info.value)
    assert stage.ctx.counters["reconnect_attempts"] == 2


def test_silent_port_times_out_at_open_when_reconnect_off(silent_port: int) -> None:
    url = f"rtsp://127.0.0.1:{silent_port}/stream"
    started = time.monotonic()
    with pytest.raises(SourceError, match="open_timeout_s=1") as info:
        live_stage(url, reconnect=False, open_timeout_s=1)
    assert time.monotonic() - started < 5
    assert "\n" not in str(info.value) and url in str(info.value)


def test_retries_forever_until_stopped(silent_port: int) -> None:
    stage = live_stage(f"rtsp://127.0.0.1:{silent_port}/stream", open_timeout_s=0.3,
                       backoff_initial_s=0.05, backoff_max_s=0.2)
    deadline = time.monotonic() + 2.5
    stage.ctx.should_stop = lambda: time.monotonic() > deadline
    assert list(stage.generate()) == []  # ends quietly on stop, no error
    stage.close()
    assert stage.ctx.counters["reconnect_attempts"] >= 2


@pytest.mark.rtsp
def test_wrong_path_fails_at_once(rtsp_server) -> None:
    url = rtsp_server.url.replace("/stream", "/nope")
    stage = live_stage(url, max_retries=None)
    with pytest.raises(SourceRejected, match="404") as info:
        list(stage.generate())  # no retries: a path the server does not know is a config error
    stage.close()
    assert "\n" not in str(info.value) and url in str(info.value)
    assert "reconnect_attempts" not in stage.ctx.counters


@pytest.mark.rtsp
def test_udp_transport(rtsp_server, reference: list[np.ndarray]) -> None:
    stage = live_stage(rtsp_server.url, transport="udp", reconnect=False, max_fps=5)
    packets = list(stage.generate())
    stage.close()
    # Loopback UDP may lose a datagram; frames that arrive whole equal the file's.
    assert len(packets) >= 45
    exact = sum(np.array_equal(p.frame, reference[p.meta.frame]) for p in packets)
    assert exact >= 0.9 * len(packets)


@pytest.mark.rtsp
def test_stop_is_prompt_while_a_read_hangs(rtsp_server) -> None:
    """A stop request ends `generate()` at once although the reader sits in a read (server frozen)."""
    stage = live_stage(rtsp_server.url, read_timeout_s=5, stall_timeout_s=5)
    stop = threading.Event()
    stage.ctx.should_stop = stop.is_set
    gen = stage.generate()
    take(gen, 20)
    rtsp_server.pause(True)
    try:
        time.sleep(0.5)
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        rest = list(gen)
        took = time.monotonic() - started
        stage.close()
    finally:
        rtsp_server.pause(False)
    assert took < 1.5, f"generate() took {took:.2f} s to stop; the hung read lasts 5 s"
    assert len(rest) < 30  # only what was already decoded and buffered
