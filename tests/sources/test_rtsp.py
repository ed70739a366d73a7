"""Live sources against a real RTSP server (GStreamer) and against ports that refuse or never answer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.graph.validate import load_pipeline
from streamyolox.sources import SourceError
from streamyolox.stages.base import StageContext
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from tests.sources.conftest import RtspServer, free_port

REPO = Path(__file__).resolve().parents[2]


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
def test_wrong_path_is_retried_then_gives_up_naming_the_404(rtsp_server, caplog: pytest.LogCaptureFixture) -> None:
    url = rtsp_server.url.replace("/stream", "/nope")
    stage = live_stage(url, max_retries=2, backoff_initial_s=0.05)
    with caplog.at_level(logging.WARNING), pytest.raises(SourceError, match="gave up after 2") as info:
        list(stage.generate())
    stage.close()
    message = str(info.value)
    assert "\n" not in message and url in message and "404" in message, message
    assert stage.ctx.counters["reconnect_attempts"] == 2
    failed = [r.getMessage() for r in caplog.records if "connect attempt failed" in r.getMessage()]
    assert len(failed) == 3 and all("404" in m and url in m for m in failed), failed


@pytest.mark.rtsp
def test_wrong_path_retried_forever_until_stopped(rtsp_server) -> None:
    stage = live_stage(rtsp_server.url.replace("/stream", "/nope"), max_retries=None,
                       backoff_initial_s=0.05, backoff_max_s=0.2)
    deadline = time.monotonic() + 2.0
    stage.ctx.should_stop = lambda: time.monotonic() > deadline
    assert list(stage.generate()) == []  # max_retries null: a 404 does not end the run, a stop does
    stage.close()
    assert stage.ctx.counters["reconnect_attempts"] >= 3


@pytest.mark.rtsp
def test_path_served_late_is_picked_up(street_720p: Path, reference: list[np.ndarray]) -> None:
    """A media server answers 404 until its publisher connects: the source keeps trying and then plays."""
    server = RtspServer(street_720p, free_port())
    server.start(mount_after_s=2.0)
    try:
        stage = live_stage(server.url, max_retries=None, backoff_initial_s=0.2, backoff_max_s=0.5)
        gen = stage.generate()
        packets = take(gen, 30)
        stage.close()
    finally:
        server.stop()
    c = stage.ctx.counters
    # Retried through the 404s; the first connection that delivers is a connect, not a reconnect.
    assert c["reconnect_attempts"] >= 2 and "reconnects" not in c, c
    assert all(np.array_equal(p.frame, reference[i]) for i, p in enumerate(packets))


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


@pytest.mark.rtsp
@pytest.mark.timeout(120)
def test_frozen_server_stalls_and_reconnects_with_the_shipped_settings(
        rtsp_server, caplog: pytest.LogCaptureFixture) -> None:
    """rtsp_to_json.yaml's source (stall_timeout_s 5, read_timeout_s default 5) against a server frozen
    for 10 s. The hung read's timeout makes libavformat return one flushed frame instead of an error, so
    a watchdog that restarts on every frame never fired; the stall must be reported within the 10 s."""
    spec = load_pipeline(REPO / "pipelines" / "rtsp_to_json.yaml", [f"stages.source.url={rtsp_server.url}"])
    config = spec.stages["source"].options
    assert (config.stall_timeout_s, config.read_timeout_s, config.max_retries) == (5, 5, None)
    stage = DecodeStage(config, StageContext(stage_id="source"))
    stage.open()
    gen = stage.generate()
    take(gen, 30)
    frozen_at = time.time()
    rtsp_server.pause(True)
    resume = threading.Timer(10.0, rtsp_server.pause, args=(False,))
    resume.start()
    try:
        with caplog.at_level(logging.WARNING):
            after = take(gen, 30)  # blocks through the freeze: stall, reconnect once the server wakes
    finally:
        resume.join()
    stage.close()
    c = stage.ctx.counters
    stalls = [r for r in caplog.records if "no frame for stall_timeout_s=5" in r.getMessage()]
    assert len(stalls) == 1 and stalls[0].levelno == logging.WARNING, [r.getMessage() for r in caplog.records]
    # Reported between 5 s (the stall timeout; the last frame left shortly before the freeze) and the thaw.
    assert 4.5 < stalls[0].created - frozen_at < 9.0, stalls[0].created - frozen_at
    assert c["stalls"] == 1 and c["reconnects"] == 1, c
    assert c["last_reconnect_gap_s"] >= 9.0, c  # the next frame came from a new connection after the thaw
    # Frames already queued before the freeze may come first; then the new connection's, after the thaw.
    thawed = [p for p in after if p.meta.time > frozen_at]
    assert thawed and thawed[0].meta.time - frozen_at >= 9.5, [round(p.meta.time - frozen_at, 2) for p in after]
