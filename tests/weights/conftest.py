"""Keep weight lookups inside the test's temp dir: no ~/.cache, no user STREAMYOLOX_WEIGHTS_DIR, no network."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_weights_env(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("STREAMYOLOX_WEIGHTS_DIR", raising=False)
    # Port 9 (discard) on loopback refuses connections: any accidental download fails fast, offline.
    monkeypatch.setenv("STREAMYOLOX_WEIGHTS_URL", "http://127.0.0.1:9/release")
