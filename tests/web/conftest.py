"""A real pipeline for the web tests: `streamyolox run ... --http 0 --http-token T` in a subprocess, two
looping file streams (720p street, 480p dog) in one multi-stream decode -> yolox-nano -> JSON lines."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamyolox.graph import shm
from tests.conftest import shared_file

REPO = Path(__file__).resolve().parents[2]
TOKEN = "wall-test-token-1"

PIPE = """
name: {name}
model: {{name: yolox-nano, weights: "{weights}"}}
metrics: {{interval_s: 0.5}}
stages:
  cams:
    kind: decode
    loop: true
    realtime: true
    max_fps: 5
    streams: {{{streams}}}
{extra}
  pre: {{kind: letterbox, inputs: [cams]}}
  detect: {{kind: yolox, inputs: [pre]}}
  post: {{kind: nms, inputs: [detect]}}
  json: {{kind: json, inputs: [post], path: "{out}"}}
"""


@dataclass
class Live:
    """A running pipeline and how to talk to it."""

    base: str
    proc: subprocess.Popen
    out: Path
    log: Path
    clip: Path  # a short clip to add as a stream (the dog's)
    street: Path

    def call(self, method: str, path: str, body: Any = None, token: str | None = TOKEN,
             raw: bytes | None = None, timeout: float = 30) -> tuple[int, Any]:
        """(status, JSON body or None); HTTP errors are returned, not raised."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                text = res.read()
                return res.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read()
            return exc.code, json.loads(text) if text else None

    def rows(self) -> dict[str, dict[str, Any]]:
        status, rows = self.call("GET", "/streams")
        assert status == 200, rows
        return {r["id"]: r for r in rows}

    def records(self, stream: str) -> list[dict[str, Any]]:
        lines = self.out.read_text().splitlines() if self.out.exists() else []
        out = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line being written
                continue
            if rec.get("stream") == stream:
                out.append(rec)
        return out


def wait_for(what: str, cond: Any, timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@contextmanager
def start_live(tmp: Path, weights: Path, streams: dict[str, Path], extra: str = "",
               name: str = "web") -> Iterator[Live]:
    """`streamyolox run` with the streams in one decode stage (`extra`: more of its options, YAML lines);
    yields once every stream has frames at the sink; stops it with SIGINT and checks it left nothing."""
    out, log, pipe = tmp / "out.jsonl", tmp / "run.log", tmp / "web.yaml"
    listed = ", ".join(f'{k}: "{v}"' for k, v in streams.items())
    pipe.write_text(PIPE.format(name=name, weights=weights, streams=listed, extra=extra, out=out))
    cmd = [sys.executable, "-m", "streamyolox", "run", str(pipe), "--no-dashboard", "--http", "0",
           "--http-token", TOKEN]
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        found = wait_for("the HTTP port in the log", lambda: re.search(
            r"metrics on http://127\.0\.0\.1:(\d+)/metrics", log.read_text()), 90)
        clip = shared_file("media", "dog_pan_480p.mp4")
        run = Live(f"http://127.0.0.1:{found.group(1)}", proc, out, log, clip, streams.get("street", clip))
        wait_for("frames of every stream at the sink",
                 lambda: proc.poll() is None and all(run.rows().get(s, {}).get("frames", 0) > 3
                                                     for s in streams), 120, every=0.5)
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
        print(log.read_text()[-3000:])
    assert code == 128 + signal.SIGINT, log.read_text()[-3000:]
    assert shm.leftovers(f"syx-{proc.pid}-") == []
    assert not any(p.startswith(f"syx-{proc.pid}-") for p in os.listdir("/tmp"))


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, nano_pth: Path, street_720p: Path) -> Iterator[Live]:
    dog = shared_file("media", "dog_pan_480p.mp4")
    with start_live(tmp_path_factory.mktemp("web"), nano_pth, {"street": street_720p, "dog": dog}) as run:
        yield run
