"""The ONNX export cache is keyed by the weights' content: copies and touches reuse it, new content does not,
and replicas exporting at once leave one whole file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamyolox.inference import make_backend
from streamyolox.inference.export_cache import onnx_cache_key, onnx_cache_path, weights_digest
from streamyolox.model.spec import ModelSpec


def exports(cache: Path) -> dict[str, int]:
    """name -> mtime_ns of every file in the export cache (lock files aside)."""
    return {p.name: p.stat().st_mtime_ns for p in (cache / "onnx").iterdir() if not p.name.endswith(".lock")}


def ort(weights: Path) -> object:
    return make_backend(ModelSpec(weights=str(weights), backend="onnxruntime"), threads=1)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_key_is_the_content_not_the_path(nano_pth: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "renamed.pth"
    copy.parent.mkdir()
    shutil.copy(nano_pth, copy)
    assert weights_digest(copy) == weights_digest(nano_pth)
    assert onnx_cache_path(copy, "yolox-nano", (416, 416)) == onnx_cache_path(nano_pth, "yolox-nano", (416, 416))
    digest = weights_digest(nano_pth)
    keys = {onnx_cache_key(digest, "yolox-nano", (416, 416)), onnx_cache_key(digest, "yolox-nano", (320, 320)),
            onnx_cache_key(digest, "yolox-tiny", (416, 416)), onnx_cache_key(digest, "yolox-nano", (416, 416), 17),
            onnx_cache_key("0" * 64, "yolox-nano", (416, 416))}
    assert len(keys) == 5


def test_copy_and_touch_reuse_the_export_new_content_does_not(nano_pth: Path, cache: Path,
                                                               tmp_path: Path, dog_input_416: np.ndarray) -> None:
    import torch

    first = ort(nano_pth)
    before = exports(cache)
    assert len(before) == 1 and first.onnx_path.name in before  # type: ignore[attr-defined]

    copy = tmp_path / "copy" / "yolox_nano.pth"
    copy.parent.mkdir()
    shutil.copy(nano_pth, copy)
    assert ort(copy).onnx_path == first.onnx_path  # type: ignore[attr-defined]
    os.utime(copy, ns=(1_000_000_000, 1_000_000_000))  # a new mtime, the same bytes
    assert ort(copy).onnx_path == first.onnx_path  # type: ignore[attr-defined]
    assert exports(cache) == before  # nothing written, nothing rewritten

    ckpt = torch.load(copy, map_location="cpu", weights_only=True)
    bias = next(k for k in ckpt["model"] if k.endswith("obj_preds.0.bias"))
    ckpt["model"][bias] += 3.0  # objectness up: another model in the same file name
    torch.save(ckpt, copy)
    changed = ort(copy)
    after = exports(cache)
    assert len(after) == 2 and changed.onnx_path.name in after and changed.onnx_path != first.onnx_path  # type: ignore[attr-defined]
    x = np.ascontiguousarray(dog_input_416)
    assert (changed(x)[0, :, 4] > first(x)[0, :, 4]).mean() > 0.5  # type: ignore[operator]


def test_concurrent_exports_leave_one_whole_file(nano_pth: Path, cache: Path, dog_input_416: np.ndarray) -> None:
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
            "from streamyolox.inference import make_backend; from streamyolox.model.spec import ModelSpec; "
            f"b = make_backend(ModelSpec(weights={str(nano_pth)!r}, backend='onnxruntime'), threads=1); "
            "print('PATH', b.onnx_path)")
    env = {**os.environ, "STREAMYOLOX_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    paths = {line.split()[1] for out in outs for line in out.splitlines() if line.startswith("PATH")}
    (export,) = (cache / "onnx").glob("*.onnx")
    assert paths == {str(export)}
    assert not list((cache / "onnx").glob(".*.tmp"))  # no half-written leftovers
    # the lock let one process export and the other wait for it
    assert sum(out.count("exported the model") for out in outs) == 1
    import onnx

    onnx.checker.check_model(str(export))
    reference = make_backend(ModelSpec(weights=str(nano_pth), backend="torch"))(dog_input_416)
    np.testing.assert_allclose(ort(nano_pth)(np.ascontiguousarray(dog_input_416))[..., 4:],  # type: ignore[operator]
                               reference[..., 4:], atol=1e-4)
