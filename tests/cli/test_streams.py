"""`streamyolox streams` without a pipeline: one-line errors for what is wrong before or at the connection.
With a running pipeline: tests/web/test_streams_api.py::test_cli_wraps_the_routes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamyolox", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def test_nothing_listening_is_one_line() -> None:
    res = _cli("streams", "list", "--http", "http://127.0.0.1:9")
    assert res.returncode == 1
    assert res.stderr == ("streamyolox: error: http://127.0.0.1:9: cannot connect (Connection refused): "
                          "is the pipeline running with --http?\n")


def test_bad_arguments_are_one_line() -> None:
    res = _cli("streams", "add", "cam1", "clip.mp4", "--http", "http://127.0.0.1:9", "--set", "max_fps")
    assert (res.returncode, res.stderr) == (1, "streamyolox: error: --set max_fps: expected OPTION=VALUE\n")
    res = _cli("streams", "remove", "cam1", "--http", "127.0.0.1:9")
    assert (res.returncode, res.stderr) == (1, "streamyolox: error: --http 127.0.0.1:9: expected http://HOST:PORT\n")
    res = _cli("streams", "list")
    assert res.returncode == 2 and "the following arguments are required: --http" in res.stderr


def test_set_values_are_typed_like_yaml() -> None:
    from streamyolox.cli.streams import _options

    assert _options(["max_fps=10", "loop=true", "transport=udp", "stride=2.5", "name="]) == \
        {"max_fps": 10, "loop": True, "transport": "udp", "stride": 2.5, "name": ""}
