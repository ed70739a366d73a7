"""Zoo-name resolution: local folder, cache, download from a (local) release server, offline message."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

from streamyolox.weights import WeightsError, download_weights, load_model, resolve_weights
from streamyolox.weights.hub import candidate_filenames, find_local


@pytest.fixture
def release_server(tmp_path, monkeypatch):
    """A loopback HTTP server standing in for the GitHub release; yields its folder."""
    folder = tmp_path / "release"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield folder
    server.shutdown()
    server.server_close()
    thread.join()


def test_existing_path_and_missing_path(nano_pth, tmp_path):
    assert resolve_weights(nano_pth) == nano_pth
    with pytest.raises(WeightsError, match=r"weights file not found: .*gone\.pth"):
        resolve_weights(tmp_path / "gone.pth")
    with pytest.raises(WeightsError, match="neither a file nor a zoo model"):
        resolve_weights("yolox-q")


def test_weights_dir_searched_first(nano_pth, nano_onnx, tmp_path, monkeypatch):
    local = tmp_path / "mine"
    local.mkdir()
    shutil.copy(nano_onnx, local / "yolox_nano.onnx")
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_DIR", str(local))
    assert resolve_weights("yolox-nano") == local / "yolox_nano.onnx"
    shutil.copy(nano_pth, local / "yolox_nano.pth")
    assert resolve_weights("YOLOX_Nano") == local / "yolox_nano.pth"  # .pth preferred over .onnx
    assert resolve_weights("yolox_nano.onnx") == local / "yolox_nano.onnx"  # bare file names too
    loaded = load_model(None, name="yolox-nano")
    assert loaded.source_path == local / "yolox_nano.pth" and loaded.name == "yolox-nano"
    assert candidate_filenames("yolox-darknet53")[0] == "yolox_darknet.pth"


def test_offline_download_says_what_to_do(tmp_path):
    with pytest.raises(WeightsError) as exc:
        resolve_weights("yolox-tiny")
    message = str(exc.value)
    assert "\n" not in message
    assert "could not download yolox-tiny from http://127.0.0.1:9/release/yolox_tiny.pth" in message
    assert "put yolox_tiny.pth in $STREAMYOLOX_WEIGHTS_DIR or pass --weights PATH" in message
    assert not list((tmp_path / "cache").iterdir())  # no partial file left behind


def test_download_verifies_and_caches(nano_pth, release_server, tmp_path):
    shutil.copy(nano_pth, release_server / "yolox_nano.pth")
    path = resolve_weights("yolox-nano", show_progress=False)
    assert path == tmp_path / "cache" / "yolox_nano.pth"
    assert path.read_bytes() == nano_pth.read_bytes()
    assert find_local("yolox-nano") == path  # the next lookup needs no network
    assert load_model("yolox-nano").name == "yolox-nano"


def test_download_of_wrong_file_is_discarded(nano_pth, release_server, tmp_path):
    shutil.copy(nano_pth, release_server / "yolox_tiny.pth")  # a mirror serving the wrong model
    (release_server / "yolox_s.pth").write_bytes(nano_pth.read_bytes()[:50_000])  # a cut-off transfer
    with pytest.raises(
        WeightsError, match=r"downloaded file for yolox-tiny does not load, discarded: .*width 0\.25"
    ):
        download_weights("yolox-tiny", show_progress=False)
    with pytest.raises(
        WeightsError, match=r"yolox-s does not load, discarded: .*not a readable PyTorch checkpoint"
    ):
        download_weights("yolox-s", dest_dir=tmp_path / "dl", show_progress=False)
    assert not list((tmp_path / "cache").iterdir()) and not list((tmp_path / "dl").iterdir())
