"""`decode` with many streams in one stage, on real files, against an independent PyAV decode of each file:
every frame of each stream in order, round robin among streams, a stream failing alone, streams added and
removed from another thread while generate() runs."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

from streamyolox.detections import FrameMeta
from streamyolox.sources import SourceError
from streamyolox.sources.streams import StreamExists
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.packet import Packet
from streamyolox.stages.testing import make_stage
from tests.stages.test_decode import faststart_copy


def digest(image: object) -> str:
    return hashlib.sha1(memoryview(image)).hexdigest()  # type: ignore[arg-type]


def reference_digests(path: Path) -> list[str]:
    """A digest of every frame of `path` decoded by plain PyAV (BGR), in order."""
    with av.open(str(path)) as container:
        return [digest(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def street_ref(street_720p: Path) -> list[str]:
    return reference_digests(street_720p)


@pytest.fixture(scope="module")
def dog_480p() -> Path:
    from tests.conftest import shared_file

    return shared_file("media", "dog_pan_480p.mp4")


@pytest.fixture(scope="module")
def dog_ref(dog_480p: Path) -> list[str]:
    return reference_digests(dog_480p)


def by_stream(packets: list[Packet] | list[Seen]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for p in packets:
        out.setdefault(p.meta.stream, []).append(p)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_four_streams_every_frame_in_order(street_720p: Path, dog_480p: Path, street_ref: list[str],
                                           dog_ref: list[str]) -> None:
    streams = {"s1": str(street_720p), "s2": {"url": str(street_720p), "stride": 4},
               "d1": str(dog_480p), "d2": {"url": str(dog_480p), "max_fps": 10}}
    stage = make_stage(DecodeStage, {"streams": streams, "threads": 1}, stage_id="cams")
    stage.open()
    packets = list(stage.generate())
    stage.close()
    got = by_stream(packets)
    expected = {"s1": (street_ref, range(300)), "s2": (street_ref, range(0, 300, 4)),
                "d1": (dog_ref, range(150)), "d2": (dog_ref, range(0, 150, 3))}  # 30 fps file, max 10 fps
    assert set(got) == set(expected)
    for sid, (ref, frames) in expected.items():
        assert [p.meta.frame for p in got[sid]] == list(frames), sid
        assert [digest(p.frame) for p in got[sid]] == [ref[i] for i in frames], f"{sid}: frames differ from PyAV"
    status = {s["id"]: s for s in stage.streams_status()}
    assert {s["state"] for s in status.values()} == {"ended"}
    assert status["s2"]["decoded"] == 300 and status["s2"]["skipped"] == 225 and status["s2"]["frames"] == 75
    assert status["d1"]["last_frame"] == 149 and status["s1"]["dropped"] == 0
    assert stage.ctx.counters["decoded"] == 900


def test_round_robin_among_ready_streams(street_720p: Path, dog_480p: Path) -> None:
    """With every stream's buffer full, frames leave strictly in turn: a fast stream cannot starve the rest."""
    streams = {"a": str(street_720p), "b": str(dog_480p), "c": {"url": str(dog_480p), "loop": True}}
    stage = make_stage(DecodeStage, {"streams": streams, "threads": 1})
    stage.open()
    gen = stage.generate()
    order = [next(gen).meta.stream]
    for _ in range(30):
        wait_for(lambda: all(s["buffered"] == 2 for s in stage.streams_status()))
        order.append(next(gen).meta.stream)
    gen.close()
    stage.close()
    for i in range(1, len(order) - 2):
        assert sorted(order[i:i + 3]) == ["a", "b", "c"], order


def test_one_stream_failing_never_stops_the_others(street_720p: Path, dog_480p: Path, dog_ref: list[str],
                                                   tmp_path: Path) -> None:
    full = faststart_copy(street_720p, tmp_path / "full.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    streams = {"bad": {"url": str(cut), "on_corrupt": "stop"}, "good": str(dog_480p)}
    stage = make_stage(DecodeStage, {"streams": streams, "threads": 1})
    stage.open()
    packets = list(stage.generate())  # no raise: one stream of two failed
    stage.close()
    got = by_stream(packets)
    assert [digest(p.frame) for p in got["good"]] == dog_ref
    status = {s["id"]: s for s in stage.streams_status()}
    assert status["bad"]["state"] == "down" and "corrupt data at frame" in status["bad"]["error"]
    assert 0 < len(got["bad"]) < 300 and status["good"]["state"] == "ended"
    both_bad = {"x": {"url": str(cut), "on_corrupt": "stop"}, "y": {"url": str(cut), "on_corrupt": "stop"}}
    stage = make_stage(DecodeStage, {"streams": both_bad})
    stage.open()
    with pytest.raises(SourceError, match=r"^all 2 streams failed: x: .*corrupt data at frame"):
        list(stage.generate())
    stage.close()


@dataclass
class Seen:
    """What a test keeps of a packet: its meta and its frame's digest. Keeping the frames themselves had a
    failed test's consumer hold every frame of a looping file (the OOM killer took pytest at 24 GB)."""

    meta: FrameMeta
    digest: str


class Consumer(threading.Thread):
    """Runs generate() in its own thread (as the stage loop does) while the test calls the control methods.
    Use it as a context manager: on the way out, failed or not, it stops pulling and closes the generator."""

    def __init__(self, stage: DecodeStage) -> None:
        super().__init__(daemon=True)
        self.stage = stage
        self.packets: list[Seen] = []
        self.error: BaseException | None = None
        self._stop_now = threading.Event()

    def run(self) -> None:
        gen = self.stage.generate()
        try:
            for p in gen:
                self.packets.append(Seen(p.meta, digest(p.frame)))
                if self._stop_now.is_set() or len(self.packets) > MAX_SEEN:
                    break
                time.sleep(0.002)  # a pipeline slower than the decoders: buffers stay full
        except BaseException as exc:
            self.error = exc
        finally:
            gen.close()

    def count(self, stream: str) -> int:
        return sum(p.meta.stream == stream for p in list(self.packets))

    def __enter__(self) -> Consumer:
        self.start()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.is_alive():
            self._stop_now.set()
            self.join(30)
        if exc_type is not None:  # a failed test: its readers (a looping file decodes forever) stop too
            self.stage.close()


MAX_SEEN = 20_000  # far more than any test here takes; a runaway loop stops there


def test_add_and_remove_while_generating(street_720p: Path, dog_480p: Path, dog_ref: list[str],
                                         street_ref: list[str]) -> None:
    loops = {"a": {"url": str(street_720p), "loop": True}, "b": {"url": str(dog_480p), "loop": True}}
    stage = make_stage(DecodeStage, {"streams": loops, "threads": 1})
    stage.open()
    with Consumer(stage) as consumer:
        wait_for(lambda: consumer.count("a") >= 20 and consumer.count("b") >= 20)
        added = stage.add_stream("c", {"url": str(dog_480p), "stride": 5})
        assert added["id"] == "c" and added["state"] in ("connecting", "up")
        with pytest.raises(StreamExists):
            stage.add_stream("b", str(dog_480p))
        with pytest.raises(ValueError, match=r"^streams.d.max_fps: expected a number > 0, got -1$"):
            stage.add_stream("d", {"url": str(dog_480p), "max_fps": -1})
        with pytest.raises(ValueError, match=r"^streams.d.url: source file not found"):
            stage.add_stream("d", "/nonexistent/clip.mp4")
        with pytest.raises(KeyError):
            stage.remove_stream("zz")
        wait_for(lambda: consumer.count("c") >= 5)
        removed = stage.remove_stream("a")
        assert removed["state"] == "removed"
        last_a = removed["last_frame"]
        wait_for(lambda: consumer.count("a") >= removed["frames"], timeout=10)  # what was emitted drains
        time.sleep(0.3)  # the removed reader stops; nothing more of `a` may come out
        assert consumer.count("a") == last_a + 1 == removed["frames"]
        again = stage.add_stream("a", str(dog_480p))  # the id is free again; its frame index continues
        assert again["state"] in ("connecting", "up")
        wait_for(lambda: any(s["id"] == "c" and s["state"] == "ended" for s in stage.streams_status()))
        stage.remove_stream("b")
        consumer.join(60)
        assert not consumer.is_alive() and consumer.error is None, consumer.error
    stage.close()
    got = by_stream(consumer.packets)
    assert [p.digest for p in got["c"]] == dog_ref[::5]
    assert [p.meta.frame for p in got["c"]] == list(range(0, 150, 5))
    old_a = [p for p in got["a"] if p.meta.frame <= last_a]
    new_a = [p for p in got["a"] if p.meta.frame > last_a]
    assert [p.meta.frame for p in old_a] == list(range(last_a + 1))
    assert [p.digest for p in old_a] == [street_ref[i % 300] for i in range(last_a + 1)]
    assert [p.digest for p in new_a] == dog_ref, "the re-added stream: every frame, in order"
    assert [p.meta.frame for p in new_a] == list(range(new_a[0].meta.frame, new_a[0].meta.frame + 150))
    frames_b = [p.meta.frame for p in got["b"]]
    assert frames_b == list(range(len(frames_b)))
    status = {s["id"]: s["state"] for s in stage.streams_status()}
    assert status == {"a": "ended", "b": "removed", "c": "ended"}
    with pytest.raises(ValueError, match="the source has ended"):
        stage.add_stream("e", str(dog_480p))


def test_empty_source_waits_for_streams_added_live(dog_480p: Path, dog_ref: list[str]) -> None:
    stage = make_stage(DecodeStage, {"streams": {}, "threads": 1})
    stage.open()
    with Consumer(stage) as consumer:
        time.sleep(0.5)
        assert consumer.is_alive() and not consumer.packets  # no stream yet: it waits, it does not end
        stage.add_stream("late", str(dog_480p))
        consumer.join(60)
        assert not consumer.is_alive() and consumer.error is None  # the one stream ended: so does the source
    stage.close()
    assert [p.digest for p in consumer.packets] == dog_ref
    idle = make_stage(DecodeStage, {"streams": {}})
    idle.open()
    deadline = time.monotonic() + 0.5
    idle.ctx.should_stop = lambda: time.monotonic() > deadline
    assert list(idle.generate()) == []  # a stop ends the wait
    idle.close()


MEASURE_RSS = """
import json, sys, psutil
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.testing import make_stage
n, clip = int(sys.argv[1]), sys.argv[2]
stage = make_stage(DecodeStage, {"streams": {f"c{i}": clip for i in range(n)}, "loop": True})
stage.open()
gen = stage.generate()
peak = 0
for k in range(120 * n + 200):  # every reader well into its stream, its buffers full
    next(gen)
    if k > 60 * n:
        peak = max(peak, psutil.Process().memory_info().rss)
gen.close()
stage.close()
print(json.dumps({"peak": peak}))
"""


def test_each_stream_costs_under_40_mb(street_720p: Path) -> None:
    """Peak RSS of a running decode with 1 and with 4 looping 720p streams (default threads: 2 FFmpeg threads
    each), each in a fresh interpreter. Measured on the 2-core AMD EPYC: ~21 MB per stream (threads 1: ~19)."""
    import json
    import subprocess
    import sys

    peaks = []
    for n in (1, 4):
        done = subprocess.run([sys.executable, "-c", MEASURE_RSS, str(n), str(street_720p)], capture_output=True,
                              text=True, timeout=120, check=True)
        peaks.append(json.loads(done.stdout.strip().splitlines()[-1])["peak"])
    per_stream_mb = (peaks[1] - peaks[0]) / 3 / 1e6
    print(f"peak RSS 1 stream {peaks[0] / 1e6:.0f} MB, 4 streams {peaks[1] / 1e6:.0f} MB: "
          f"{per_stream_mb:.1f} MB per stream")
    assert 0 < per_stream_mb < 40
