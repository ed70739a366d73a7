"""The mp4 sink across the loss of a Ray node (run inside a loopback-only network namespace by
test_netns.py): the lost shard restarts whole, its sources read their files again from the start, and its
restarted mp4 sink writes each such stream's file anew, so every file decodes (PyAV) to every frame of the
clip exactly once, in order, with no `.partN.mp4` beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from cluster import LocalCluster
from netns_cluster import HERE, STREAMS, _finish, _frames, _no_stage_left

pytestmark = pytest.mark.timeout(300)
PIPE = """
name: shard
stages:
  source: {{kind: decode, streams: {streams}, restart: on-failure}}
  work: {{kind: "fake_stages:Passthrough", inputs: [source], sleep_ms: 40, check_pixels: false,
         restart: on-failure}}
  video: {{kind: mp4, inputs: [work], path: "{out}/{{stream}}.mp4", fragmented: true, draw: false,
          keyframe_interval_s: 0.5, restart: on-failure}}
  lines: {{kind: "ray_stages:StreamLines", inputs: [work], path: "{out}/{{stream}}.jsonl", restart: on-failure}}
"""


BITS, W, H = 6, 160, 96  # frame i of the clip shows i in binary: 6 columns, white for a 1


@pytest.fixture(scope="module")
def coded_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """60 frames, each showing its own index in big black and white blocks: an index that survives two
    lossy encodes, so the frames of an output name the source frames they are."""
    path = tmp_path_factory.mktemp("media") / "coded.mp4"
    n = 60
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for i in range(n):
            image = np.zeros((H, W, 3), np.uint8)
            for bit in range(BITS):
                if i >> bit & 1:
                    image[:, bit * (W // BITS):(bit + 1) * (W // BITS)] = 255
            out.mux(s.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(s.encode())
    assert _indices(path) == list(range(n))  # the reference reads back as written
    return path, n


def _indices(path: Path) -> list[int]:
    """The clip frame each frame of an mp4 is (PyAV), read from its blocks (the middle of each column)."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            gray = f.to_ndarray(format="gray")
            step = W // BITS
            out.append(sum(1 << b for b in range(BITS)
                           if gray[8:-8, b * step + 4:(b + 1) * step - 4].mean() > 128))
    return out


def test_raylet_killed_mid_run_every_mp4_frame_exactly_once(tmp_path: Path, cluster: LocalCluster,
                                                            coded_clip: tuple[Path, int]) -> None:
    clip = coded_clip
    out = tmp_path / "out"
    out.mkdir()
    streams = "{" + ", ".join(f"{s}: {clip[0]}" for s in STREAMS) + "}"
    (tmp_path / "p.yaml").write_text(PIPE.format(streams=streams, out=out))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent / "graph")]),
           "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamyolox", "run", str(tmp_path / "p.yaml"), "--executor", "ray",
         "--ray-address", cluster.address, "--shards", "2", "--no-dashboard"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while min(len(_frames(tmp_path, s)) for s in STREAMS) < 8:  # both shards are writing
        assert time.monotonic() < deadline and proc.poll() is None, "the run never got going"
        cluster.processes()
        time.sleep(0.1)
    cluster.processes()  # remember the worker node's processes: orphans once its raylet is gone
    before = {s: len(_frames(tmp_path, s)) for s in STREAMS}
    for pid in cluster.worker_raylets:
        os.kill(pid, signal.SIGKILL)
    code, err = _finish(proc, 180)
    assert code == 0, err[-4000:]
    assert any(n < clip[1] for n in before.values()), before  # it was killed mid-run
    anew = [s for s in STREAMS if f"writing {out / s}.mp4 anew" in err]
    assert len(anew) == 2, err[-3000:]  # the two streams of the lost shard started over
    assert sorted(p.name for p in out.glob("*.part*")) == []
    for s in STREAMS:
        assert _indices(out / f"{s}.mp4") == list(range(clip[1])), s  # every frame once, in order
    cluster.processes()
    _no_stage_left()
