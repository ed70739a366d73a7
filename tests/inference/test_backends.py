"""Backends: onnxruntime and torch agree; a cached export runs without importing torch."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamyolox.inference import make_backend
from streamyolox.model.spec import ModelSpec


def test_onnxruntime_matches_torch(nano_pth: Path, dog_input_416: np.ndarray, tmp_path: Path,
                                   monkeypatch) -> None:
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path))
    x = np.ascontiguousarray(dog_input_416, dtype=np.float32)  # already [1, 3, 416, 416]
    ort = make_backend(ModelSpec(weights=str(nano_pth), backend="onnxruntime"))(x)
    torch = make_backend(ModelSpec(weights=str(nano_pth), backend="torch"))(x)
    assert ort.shape == torch.shape == (1, 3549, 85)
    np.testing.assert_allclose(ort[..., 4:], torch[..., 4:], atol=1e-4)
    np.testing.assert_allclose(ort[..., :4], torch[..., :4], rtol=1e-3, atol=1e-2)


def test_cached_export_skips_torch(nano_pth: Path, tmp_path: Path) -> None:
    # the second process finds the first one's export: neither it nor OpenVINO, on the same file, import torch
    backends = ["onnxruntime", "onnxruntime"]
    if importlib.util.find_spec("openvino") is not None:
        backends.append("openvino")
    env = {**os.environ, "STREAMYOLOX_CACHE": str(tmp_path)}
    runs = []
    for backend in backends:
        code = ("import sys; from streamyolox.inference import make_backend; from streamyolox.model.spec import "
                f"ModelSpec; b = make_backend(ModelSpec(weights={str(nano_pth)!r}, backend={backend!r})); "
                "print(b.name, 'torch' in sys.modules, b.onnx_path)")
        runs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True))
    (export,) = (tmp_path / "onnx").glob("*.onnx")
    assert [r.stdout.split() for r in runs] == [[b, str(i == 0), str(export)] for i, b in enumerate(backends)]


def test_missing_openvino_is_a_one_line_error(nano_pth: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    with pytest.raises(ValueError, match=r"^model.backend: openvino is not installed; pip install") as err:
        make_backend(ModelSpec(weights=str(nano_pth), backend="openvino"))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_cpu_runtimes_refuse_cuda(nano_pth: Path, backend: str) -> None:
    with pytest.raises(ValueError, match=f"{backend} runs on the CPU here; use backend 'torch' for device cuda"):
        make_backend(ModelSpec(weights=str(nano_pth), backend=backend, device="cuda"))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_concurrent_calls_give_each_frame_its_own_result(nano_pth: Path, images: list[np.ndarray], tmp_path: Path,
                                                          monkeypatch, backend: str) -> None:
    """concurrency 2: two threads call one backend at once (two calls in flight, never more), every
    frame's output equal to the same backend's output for that frame called alone."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    if backend == "openvino":
        pytest.importorskip("openvino", reason="openvino is not installed (pip install 'streamyolox[cpu-fast]')")
    monkeypatch.setenv("STREAMYOLOX_CACHE", str(tmp_path))
    spec = ModelSpec(weights=str(nano_pth), backend=backend)
    from streamyolox.ops import letterbox

    x = np.stack([letterbox(img, (416, 416))[0] for img in images])  # [5, 3, 416, 416]
    alone = make_backend(spec, threads=1)
    expected = [alone(x[i : i + 1]) for i in range(5)]
    both = make_backend(spec, threads=1, concurrency=2)
    lock, inside, most, slots = threading.Lock(), [0], [0], set()
    run = both._run  # type: ignore[attr-defined]

    def spy(part: np.ndarray, slot: int = 0) -> np.ndarray:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            slots.add(slot)
        try:
            return run(part, slot)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(both, "_run", spy)
    with ThreadPoolExecutor(4) as pool:  # four callers: the backend lets two in at a time
        found = list(pool.map(lambda i: both(x[i % 5 : i % 5 + 1]), range(20)))
    assert most[0] == 2 and slots == {0, 1}
    for i, out in enumerate(found):
        np.testing.assert_allclose(out, expected[i % 5], rtol=0, atol=1e-4)


def test_concurrency_needs_a_cpu_export_backend(nano_pth: Path) -> None:
    with pytest.raises(ValueError, match=r"^concurrency: 2 needs a CPU export backend \(onnxruntime or openvino\)"):
        make_backend(ModelSpec(weights=str(nano_pth), backend="torch"), concurrency=2)
