"""HTTP sources: an MP4 over HTTP and an HLS VOD playlist served from a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from streamyolox.sources import SourceError, SourceRejected
from streamyolox.stages.decode import DecodeStage
from streamyolox.stages.testing import make_stage, run_stage


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_root(street_720p: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, folder) of a loopback HTTP server holding the clip as MP4 and as an HLS playlist."""
    root = tmp_path_factory.mktemp("http")
    with av.open(str(street_720p)) as src, \
            av.open(str(root / "index.m3u8"), "w", format="hls",
                    options={"hls_time": "2", "hls_playlist_type": "vod"}) as hls, \
            av.open(str(root / "clip.mp4"), "w", options={"movflags": "faststart"}) as mp4:
        streams = [out.add_stream_from_template(src.streams.video[0]) for out in (hls, mp4)]
        for packet in src.demux(video=0):
            if packet.dts is None:
                continue
            for stream in streams:
                packet.stream = stream
                stream.container.mux(packet)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def reference(street_720p: Path) -> list[np.ndarray]:
    with av.open(str(street_720p)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.mark.parametrize("name", ["clip.mp4", "index.m3u8"])
def test_http_media_every_frame_then_ends(http_root, reference: list[np.ndarray], name: str) -> None:
    base, _ = http_root
    stage = make_stage(DecodeStage, {"url": f"{base}/{name}", "read_timeout_s": 5})
    stage.open()
    out = list(stage.generate())  # finite media: ends on its own although reconnect is on
    stage.close()
    assert len(out) == 300
    assert all(np.array_equal(p.frame, reference[i]) for i, p in enumerate(out))
    assert "reconnect_attempts" not in stage.ctx.counters


def test_http_404_is_retried_then_names_the_404(http_root) -> None:
    base, _ = http_root
    with pytest.raises(SourceError, match="gave up after 1 reconnect attempts") as info:
        run_stage(DecodeStage, options={"url": f"{base}/missing.m3u8", "max_retries": 1,
                                        "backoff_initial_s": 0.05})
    assert "\n" not in str(info.value) and "missing.m3u8" in str(info.value) and "404" in str(info.value)


def test_http_404_with_reconnect_off_fails_at_open(http_root) -> None:
    base, _ = http_root
    with pytest.raises(SourceRejected, match="404") as info:
        make_stage(DecodeStage, {"url": f"{base}/missing.m3u8", "reconnect": False}).open()
    assert "\n" not in str(info.value) and "missing.m3u8" in str(info.value)
