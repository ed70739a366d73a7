"""The camera wall on a real pipeline (tests/web/conftest.py): the tap encodes only while someone watches,
the MJPEG parts are JPEGs of the asked width at most at the asked rate, and headless Chromium shows a tile
per stream with the picture and its boxes (checked on the screenshot's pixels)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from scipy import ndimage

from streamyolox.draw import class_color
from tests.web.conftest import TOKEN, Live, wait_for

pytestmark = pytest.mark.timeout(300)
BACKGROUND = (17, 17, 17)  # the page's #111
LABEL_CLASSES = (0, 1, 2, 16)  # person, bicycle, car, dog: in both clips


def _tap(live: Live) -> dict:
    status, doc = live.call("GET", "/wall")
    assert status == 200, doc
    return doc["tap"]


def _jpegs(res, n: int) -> list[np.ndarray]:
    """Read `n` parts of a multipart/x-mixed-replace response; each decoded."""
    out = []
    while len(out) < n:
        line = res.readline()
        if not line:
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while res.readline() not in (b"\r\n", b"\n"):
                pass
            img = cv2.imdecode(np.frombuffer(res.read(length), np.uint8), cv2.IMREAD_COLOR)
            assert img is not None
            out.append(img)
    return out


def test_tap_encodes_only_while_watched(live: Live) -> None:
    idle = _tap(live)
    assert idle["watching"] == [] and idle["stage"] == "json"  # the sink downstream of nms
    time.sleep(1.5)
    assert _tap(live)["encoded"] == idle["encoded"]  # frames flow, nobody watches: nothing encoded

    req = urllib.request.Request(f"{live.base}/streams/street/mjpeg?width=320&fps=2&token={TOKEN}")
    t = time.monotonic()
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
        pictures = _jpegs(res, 4)
        elapsed = time.monotonic() - t
        watched = _tap(live)
    assert [p.shape for p in pictures] == [(180, 320, 3)] * 4  # 1280x720 scaled to the asked width
    assert all(float(p.std()) > 20 for p in pictures)  # real pictures, not a placeholder
    assert watched["watching"] == ["street"] and watched["encoded"] >= idle["encoded"] + 4
    assert 4 <= watched["taken"] - idle["taken"] <= 2 * elapsed + 3  # at most fps=2 (plus the one in hand)

    # the client left: once the server notices (its next write fails) the tap stops encoding
    wait_for("the tap to stop watching", lambda: _tap(live)["watching"] == [], 15)
    stopped = _tap(live)["encoded"]
    time.sleep(2)
    assert _tap(live)["encoded"] == stopped


def _tiles(png: Path) -> list[np.ndarray]:
    """The picture part of each tile in the screenshot (BGR), found as large regions off the background."""
    shot = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert shot is not None
    body = shot[40:]  # below the header bar
    mask = np.abs(body.astype(np.int16) - np.array(BACKGROUND, np.int16)).max(axis=2) > 6
    labels, _ = ndimage.label(mask)
    tiles = []
    for box in ndimage.find_objects(labels):
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        if w >= 200 and h >= 120:  # a tile: picture (16:9 of its width) + caption
            top, left = box[0].start, box[1].start
            tiles.append(body[top + 2: top + w * 9 // 16 - 2, left + 2: left + w - 2])
    return tiles


def _label_pixels(tile: np.ndarray) -> int:
    """Pixels of the label boxes' fill colours (one per class, `streamyolox.draw.class_color`)."""
    count = 0
    for cls in LABEL_CLASSES:
        near = np.abs(tile.astype(np.int16) - np.array(class_color(cls), np.int16)).max(axis=2) <= 24
        count += int(near.sum())
    return count


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_wall_in_headless_chromium(live: Live, tmp_path: Path) -> None:
    streams = sorted(s for s, r in live.rows().items() if r["state"] != "removed")
    assert {"street", "dog"} <= set(streams)
    png = tmp_path / "wall.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,800",
           "--virtual-time-budget=8000", f"{live.base}/?token={TOKEN}&width=640&fps=5"]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    print(f"screenshot: {png}")
    tiles = _tiles(png)
    assert len(tiles) == len(streams), f"{len(tiles)} tiles for {streams} (see {png})"
    for tile in tiles:
        assert float(tile.std()) > 25, f"a tile without a picture (see {png})"
        assert _label_pixels(tile) >= 40, f"a tile without boxes (see {png})"  # measured: 479 and 979
    for clip in (live.clip, live.street):  # the control: the clips' own pixels have none of those colours
        with av.open(str(clip)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
        small = cv2.resize(frame, (412, frame.shape[0] * 412 // frame.shape[1]), interpolation=cv2.INTER_AREA)
        assert _label_pixels(small) == 0
    wait_for("the tap to stop once Chromium left", lambda: _tap(live)["watching"] == [], 15)
