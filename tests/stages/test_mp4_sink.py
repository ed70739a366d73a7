"""mp4 sink: PyAV decodes what it wrote (count, size, rate, PTS), boxes drawn only where detections are,
a SIGINT'd writer leaves a playable file, a killed fragmented one too."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from streamyolox.detections import Detections, FrameMeta
from streamyolox.draw import annotate
from streamyolox.stages.mp4_sink import Mp4Sink
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage, run_stage

REPO = Path(__file__).resolve().parents[2]


def moving_boxes(index: int, width: int, height: int) -> Detections:
    """Two boxes that move with the frame index (a person and a car)."""
    x = 40 + 3 * index
    return Detections([[x, 60, x + 200, 420], [width - 400, height - 260, width - 60, height - 40]],
                      [0.91, 0.64], [0, 2])


def decode(path: Path) -> tuple[list[np.ndarray], list[float], dict]:
    """Frames (BGR), their times (s) and the stream's properties, as PyAV reads them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for f in container.decode(stream):
            frames.append(f.to_ndarray(format="bgr24"))
            times.append(float(f.time))
        info = {"frames": stream.frames, "size": (stream.width, stream.height), "rate": stream.average_rate,
                "codec": stream.codec_context.name}
        return frames, times, info


@pytest.fixture(scope="module")
def street_packets(street_720p: Path) -> list[Packet]:
    packets = []
    with av.open(str(street_720p)) as container:
        for i, f in enumerate(container.decode(video=0)):
            meta = FrameMeta("street", i, float(f.time), time.time(), f.width, f.height)
            packets.append(Packet(meta, f.to_ndarray(format="bgr24"), detections=moving_boxes(i, f.width, f.height)))
    return packets


@pytest.fixture(scope="module")
def street_mp4(street_packets: list[Packet], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mp4") / "street.mp4"
    run_stage(Mp4Sink, street_packets, {"path": str(path)})
    return path


@pytest.fixture(scope="module")
def plain_mp4(street_packets: list[Packet], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same frames through the same encoder settings without drawing: the codec-noise reference."""
    path = tmp_path_factory.mktemp("mp4") / "plain.mp4"
    run_stage(Mp4Sink, street_packets, {"path": str(path), "draw": False})
    return path


def test_same_frame_count_size_rate_and_timestamps_as_the_source(street_mp4: Path, street_720p: Path) -> None:
    frames, times, stream = decode(street_mp4)
    _, src_times, src = decode(street_720p)
    assert len(frames) == 300 and stream["frames"] == 300
    assert stream["size"] == (1280, 720) == src["size"]
    assert stream["rate"] == src["rate"] == 30
    assert stream["codec"] == "h264"
    np.testing.assert_allclose(np.array(times) - times[0], np.array(src_times) - src_times[0], atol=1e-3)


def test_boxes_drawn_where_detections_are_and_frame_kept_elsewhere(street_mp4: Path, plain_mp4: Path,
                                                                  street_packets: list[Packet]) -> None:
    frames, _, _ = decode(street_mp4)
    plain, _, _ = decode(plain_mp4)
    inside, outside, noise = [], [], []
    for i in range(0, 300, 15):
        src = street_packets[i].frame
        drawn = (annotate(src, street_packets[i].detections) != src).any(axis=2)
        near = cv2.dilate(drawn.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
        diff = np.abs(frames[i].astype(np.int16) - src.astype(np.int16)).mean(axis=2)
        inside.append(diff[drawn].mean())
        outside.append(diff[~near].mean())
        noise.append(np.abs(plain[i].astype(np.int16) - src.astype(np.int16)).mean(axis=2)[~near].mean())
    print(f"mean |out - src|: drawn pixels {np.mean(inside):.1f}, elsewhere {np.mean(outside):.2f}; "
          f"un-annotated encode elsewhere {np.mean(noise):.2f}")
    assert min(inside) > 40  # boxes and labels are there
    # Elsewhere the output is the source up to the codec's own noise (measured on an un-annotated encode).
    assert max(np.array(outside) - np.array(noise)) < 0.5 and max(outside) < 4.0


def _synthetic(n: int, size: tuple[int, int] = (240, 320), stream: str = "cam", fps: float = 25.0) -> list[Packet]:
    h, w = size
    return [Packet(FrameMeta(stream, i, i / fps, 0.0, w, h), np.full((h, w, 3), (i * 7) % 256, np.uint8),
                   detections=Detections([[10, 10, 100, 100]], [0.5], [1])) for i in range(n)]


def test_frame_rate_is_measured_from_pts_or_taken_from_the_option(tmp_path: Path) -> None:
    run_stage(Mp4Sink, _synthetic(20, fps=25.0), {"path": str(tmp_path / "a.mp4")})
    run_stage(Mp4Sink, _synthetic(20, fps=25.0), {"path": str(tmp_path / "b.mp4"), "fps": 12.5})
    assert decode(tmp_path / "a.mp4")[2]["rate"] == 25
    _, times, info = decode(tmp_path / "b.mp4")
    assert info["rate"] == 12.5 and times[-1] - times[0] == pytest.approx(19 / 12.5)


def test_missing_codec_falls_back_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        run_stage(Mp4Sink, _synthetic(5), {"path": str(tmp_path / "f.mp4"), "codec": "no_such_encoder"})
    assert "no_such_encoder" in caplog.text and "libx264" in caplog.text
    assert len(decode(tmp_path / "f.mp4")[0]) == 5


def test_other_codec_and_odd_size(tmp_path: Path) -> None:
    run_stage(Mp4Sink, _synthetic(6, size=(101, 151)), {"path": str(tmp_path / "m.mp4"), "codec": "mpeg4"})
    frames, _, stream = decode(tmp_path / "m.mp4")
    assert len(frames) == 6 and stream["codec"] == "mpeg4"
    assert frames[0].shape[:2] >= (101, 151)


def test_one_file_per_stream_with_the_placeholder_and_the_first_stream_only_without(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    packets = [p for pair in zip(_synthetic(8, stream="a"), _synthetic(8, stream="b")) for p in pair]
    run_stage(Mp4Sink, packets, {"path": str(tmp_path / "out_{stream}.mp4")})
    assert len(decode(tmp_path / "out_a.mp4")[0]) == 8 and len(decode(tmp_path / "out_b.mp4")[0]) == 8
    # without {stream} (a stream added while running; several at start are refused before it): the file
    # is the first stream's, the other's frames are skipped, counted and warned about once
    sink = make_stage(Mp4Sink, {"path": str(tmp_path / "one.mp4")})
    sink.open()
    with caplog.at_level(logging.WARNING):
        for p in packets:
            sink.process(p)
    sink.close()
    frames, _, _ = decode(tmp_path / "one.mp4")
    assert len(frames) == 8 and sink.ctx.counters["frames_skipped"] == 8
    assert [r.getMessage() for r in caplog.records].count(
        f"mp4 sink: path {str(tmp_path / 'one.mp4')!r} has no {{stream}}: it holds stream 'a' only; the frames of "
        f"stream 'b' are skipped (counted in frames_skipped)") == 1


def test_packet_without_a_frame_is_a_clear_error(tmp_path: Path) -> None:
    sink = make_stage(Mp4Sink, {"path": str(tmp_path / "x.mp4")})
    sink.open()
    with pytest.raises(ValueError, match="no frame"):
        sink.process(Packet(FrameMeta()))
    sink.close()


_WRITER = textwrap.dedent("""
    import faulthandler, signal, sys, time, numpy as np
    # What the child inherited, for the failure message: in two clean-clone runs this child did not stop on
    # SIGINT in the full suite (16 of 16 did alone); the suite's process was later seen with the default
    # handler and nothing blocked after every test, so the cause is not known. The disposition a shell gives
    # a program, whatever was inherited; SIGUSR1 dumps the stack if it hangs anyway.
    inherited = (repr(signal.getsignal(signal.SIGINT)),
                 [ln.split()[1] for ln in open("/proc/self/status") if ln.startswith(("SigBlk", "SigIgn"))])
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from streamyolox.detections import Detections, FrameMeta
    from streamyolox.stages.mp4_sink import Mp4Sink
    from streamyolox.stages.packet import Packet
    from streamyolox.stages.testing import run_stage

    def packets():
        for i in range(100000):
            frame = np.full((240, 320, 3), (i * 5) % 256, np.uint8)
            yield Packet(FrameMeta("cam", i, i / 30, 0.0, 320, 240), frame,
                         detections=Detections([[20, 20, 120, 120]], [0.8], [0]))
            if i == 90:
                print("ready", *inherited, flush=True)
            time.sleep(0.005)

    run_stage(Mp4Sink, packets(), {"path": sys.argv[1], "fragmented": sys.argv[2] == "1",
                                   "keyframe_interval_s": 1.0})
""")


def _interrupt_writer(path: Path, fragmented: bool, sig: signal.Signals) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    errors = path.with_suffix(".stderr")
    with errors.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), "1" if fragmented else "0"],
                                stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().strip()
        assert ready.startswith("ready"), errors.read_text()[-2000:]
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # faulthandler: where it is stuck
            time.sleep(1)
            raise AssertionError(f"the writer did not exit 30 s after {sig.name} (it said {ready!r}):\n"
                                 f"{errors.read_text()[-3000:]}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigint_still_leaves_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "interrupted.mp4"
    rc = _interrupt_writer(path, fragmented=False, sig=signal.SIGINT)
    frames, _, stream = decode(path)
    print(f"SIGINT: exit {rc}, {len(frames)} frames decoded")
    assert rc != 0 and len(frames) >= 91 and stream["rate"] == 30


def test_killed_fragmented_writer_leaves_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.mp4"
    rc = _interrupt_writer(path, fragmented=True, sig=signal.SIGKILL)
    frames, _, _ = decode(path)
    print(f"SIGKILL fragmented: exit {rc}, {len(frames)} frames decoded")
    # Fragments close at keyframes (1 s here) and the encoder holds some frames back: at least the first.
    assert rc == -signal.SIGKILL and len(frames) >= 30


def test_shipped_file_to_mp4_pipeline_draws_the_detections_it_reports(
        street_720p: Path, nano_pth: Path, tmp_path: Path) -> None:
    """`streamyolox run pipelines/file_to_mp4.yaml` on the 720p clip: 300 frames, boxes where the JSON says."""
    import json

    mp4, jsonl = tmp_path / "street.mp4", tmp_path / "street.jsonl"
    cmd = [sys.executable, "-m", "streamyolox", "run", str(REPO / "pipelines" / "file_to_mp4.yaml"),
           "--no-dashboard", "--set", f"stages.source.url={street_720p}", "--set", f"model.weights={nano_pth}",
           "--set", f"stages.mp4.path={mp4}", "--set", f"stages.json.path={jsonl}"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    frames, _, info = decode(mp4)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(frames) == len(records) == 300 and info["size"] == (1280, 720) and info["rate"] == 30
    source, _, _ = decode(street_720p)
    inside, outside, vs_expected = [], [], []
    for i in range(0, 300, 30):
        dets = Detections.from_json(records[i]["detections"])
        assert len(dets) > 0
        expected = annotate(source[i], dets)
        drawn = (expected != source[i]).any(axis=2)
        near = cv2.dilate(drawn.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
        diff = np.abs(frames[i].astype(np.int16) - source[i].astype(np.int16)).mean(axis=2)
        inside.append(diff[drawn].mean())
        outside.append(diff[~near].mean())
        vs_expected.append(np.abs(frames[i].astype(np.int16) - expected).mean(axis=2)[drawn].mean())
    print(f"pipeline: mean |out - src| on drawn pixels {np.mean(inside):.1f}, elsewhere {np.mean(outside):.2f}; "
          f"|out - annotate(src, json detections)| on drawn pixels {np.mean(vs_expected):.1f}")
    # The boxes are drawn, they are exactly the reported detections (up to codec noise), the rest is the source.
    assert min(inside) > 30 and max(vs_expected) < 20 and max(outside) < 4.0


def test_sigint_of_streamyolox_run_leaves_a_playable_mp4(street_720p: Path, nano_pth: Path, tmp_path: Path) -> None:
    mp4, jsonl = tmp_path / "int.mp4", tmp_path / "int.jsonl"
    cmd = [sys.executable, "-m", "streamyolox", "run", str(REPO / "pipelines" / "file_to_mp4.yaml"),
           "--no-dashboard", "--set", f"stages.source.url={street_720p}", "--set", f"model.weights={nano_pth}",
           "--set", f"stages.mp4.path={mp4}", "--set", f"stages.json.path={jsonl}"]
    run = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.poll() is None and (
                not jsonl.exists() or len(jsonl.read_text().splitlines()) < 40):
            time.sleep(0.2)
        run.send_signal(signal.SIGINT)
        rc = run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    frames, _, info = decode(mp4)
    lines = len(jsonl.read_text().splitlines())
    print(f"SIGINT of streamyolox run: exit {rc}, {len(frames)} frames in the MP4, {lines} JSON lines")
    assert 40 <= len(frames) < 300 and info["frames"] == len(frames) and info["rate"] == 30
