"""tests/ray: the Ray executor. `test_*.py` run anywhere; `netns_*.py` need a real 2-node Ray cluster and
run inside a loopback-only network namespace, started by `test_netns.py` through `run_in_netns.sh`. Their fixtures: `cluster` (one per module: start-up
is seconds) and `clip` (a small file, its frame count as PyAV decodes it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "graph"):  # ray_stages, fake_stages (as `module:Class` stage kinds)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from cluster import LocalCluster  # noqa: E402 (found through the sys.path above)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster()
    try:
        yield c
    finally:
        left = c.stop()
        assert left == [], f"Ray processes left behind: {[p.pid for p in left]}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A small clip; its frame count as PyAV decodes it (the reference for 'every frame')."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((96, 160, 3), i * 4, np.uint8), format="bgr24")
            out.mux(s.encode(frame))
        out.mux(s.encode())
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    return path, n
