"""The camera wall updates inside one open page: headless Chromium keeps the wall open, a stream is POSTed,
and a new tile appears and shows pictures with boxes without a reload (a marker set in the page survives).

Chromium is driven over `--remote-debugging-pipe` (the DevTools protocol as NUL-separated JSON on fds 3
and 4): the standard library suffices, no websocket client."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import TOKEN, Live, wait_for
from tests.web.test_wall import _label_pixels, _tiles

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")]
TILES_JS = ("JSON.stringify([...document.querySelectorAll('.tile img')].map("
            "i => [i.alt, i.naturalWidth, i.naturalHeight]))")


class DevTools:
    """One page of a headless Chromium, over the DevTools pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.proc, self.out, self.inp = proc, os.fdopen(to_browser, "wb"), os.fdopen(from_browser, "rb")
        self.ids = 0
        self.session: str | None = None

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        self.ids += 1
        msg: dict[str, Any] = {"id": self.ids, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.out.write(json.dumps(msg).encode() + b"\0")
        self.out.flush()
        buf = b""
        while True:  # events come in between; the answer has our id
            ch = self.inp.read(1)
            if not ch:
                raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
            if ch != b"\0":
                buf += ch
                continue
            reply = json.loads(buf)
            buf = b""
            if reply.get("id") == self.ids:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"]["value"]

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"]))
        return path


@contextmanager
def browser(url: str, profile: Path) -> Iterator[DevTools]:
    to_r, to_w = os.pipe()  # chromium reads commands on fd 3 ...
    from_r, from_w = os.pipe()  # ... and writes answers on fd 4

    def fds() -> None:  # in the child, before subprocess closes every fd but 3 and 4
        assert from_w != 3
        os.dup2(to_r, 3)
        os.dup2(from_w, 4)

    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--window-size=1280,800", "--remote-debugging-pipe", url]
    proc = subprocess.Popen(cmd, preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(to_r)
    os.close(from_w)
    tools = DevTools(proc, to_w, from_r)
    try:
        page = wait_for("the wall's page target", lambda: next(
            (t for t in tools.call("Target.getTargets", session=False)["targetInfos"] if t["type"] == "page"),
            None), 30)
        tools.session = tools.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                   session=False)["sessionId"]
        yield tools
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        tools.out.close()
        tools.inp.close()


def shown(tools: DevTools) -> dict[str, tuple[int, int]]:
    """Tile id -> the natural size of its picture (0 x 0 while none has arrived)."""
    return {alt: (w, h) for alt, w, h in json.loads(tools.evaluate(TILES_JS))}


def test_a_stream_added_while_the_wall_is_open_gets_a_live_tile(live: Live, tmp_path: Path) -> None:
    before = sorted(s for s, r in live.rows().items() if r["state"] not in ("removed", "ended"))
    url = f"{live.base}/?token={TOKEN}&width=640&fps=5"
    with browser(url, tmp_path / "profile") as tools:
        wait_for("a picture in every tile", lambda: (t := shown(tools)) and sorted(t) == before
                 and all(w > 0 for w, _ in t.values()), 60, every=0.5)
        tools.evaluate("window.__notReloaded = 42")
        status, row = live.call("POST", "/streams", {"id": "dog.live", "url": str(live.clip), "loop": True,
                                                     "realtime": True, "max_fps": 5})
        assert status == 201, row
        try:
            wait_for("the new tile with a picture", lambda: shown(tools).get("dog.live", (0, 0))[0] > 0, 60,
                     every=0.5)
            assert tools.evaluate("window.__notReloaded") == 42, "the page was reloaded"
            time.sleep(2)  # a few more MJPEG parts: the picture is the stream's, with boxes drawn
            png = tools.screenshot(tmp_path / "wall_live.png")
            print(f"screenshot: {png}")
            tiles = _tiles(png)
            assert len(tiles) == len(before) + 1, f"{len(tiles)} tiles for {before} + dog.live (see {png})"
            for tile in tiles:
                assert float(tile.std()) > 25, f"a tile without a picture (see {png})"
                assert _label_pixels(tile) >= 40, f"a tile without boxes (see {png})"
        finally:
            assert live.call("DELETE", "/streams/dog.live")[0] in (202, 204)
        wait_for("the tile gone, without a reload", lambda: "dog.live" not in shown(tools), 30, every=0.5)
        assert tools.evaluate("window.__notReloaded") == 42
