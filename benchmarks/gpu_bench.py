"""GPU benchmark: letterbox, decode+NMS, YOLOX inference and the per-frame GPU chain, each beside its CPU path.

Run from the repository root on a CUDA machine (scripts/device_check.sh does):

    PYTHONPATH=. python benchmarks/gpu_bench.py [--json PATH] [--budget-s 150]

Medians over a few repeats after warm-up; the table is printed last, the JSON written to ``--json`` (or
``$OUT/gpu_bench.json`` when ``$OUT`` is set). Needs torch (CUDA), CuPy and numba.cuda; never imports av,
pyzmq or pycocotools. Weights: ``yolox_nano.pth`` from ``$STREAMYOLOX_WEIGHTS_DIR`` or ``../shared/weights``,
else random init (speed does not depend on the values; the JSON says which).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamyolox.ops import letterbox, postprocess  # noqa: E402

Row = dict[str, Any]


def median_ms(fn: Callable[[], Any], sync: Callable[[], None], warmup: int = 3, iters: int = 10,
              repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean wall time (ms) of ``iters`` calls, synchronised at both ends."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000 / iters)
    return statistics.median(times)


def find_weights(name: str = "yolox_nano.pth") -> Path | None:
    shared = Path(os.environ.get("STREAMYOLOX_SHARED", REPO.parent / "shared")) / "weights"
    for folder in (os.environ.get("STREAMYOLOX_WEIGHTS_DIR"), shared):
        if folder and (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def load_yolox(name: str, device: str, half: bool = False) -> tuple[Any, str]:
    """Fused eval model on ``device``; (model, where its weights came from)."""
    import torch

    from streamyolox.model import build_model

    model = build_model(name).eval()
    path = find_weights(name.replace("-", "_") + ".pth")
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state), strict=True)
    model = model.fuse().to(device)
    return (model.half() if half else model), (str(path) if path else "random init")


def frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A textured BGR frame (noise over gradients): resize cost does not depend on content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    return np.clip(base + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def bench_letterbox(sync: Callable[[], None]) -> list[Row]:
    import cupy as cp

    from streamyolox.ops import letterbox_gpu

    rows = []
    for (h, w), size in (((1080, 1920), (416, 416)), ((720, 1280), (640, 640))):
        img = frame(h, w)
        out = np.empty((3, *size), np.float32)
        dout = cp.empty((3, *size), cp.float32)
        dimg = cp.asarray(img)
        name = f"letterbox {h}p->{size[0]}"
        cpu = median_ms(lambda: letterbox(img, size, out=out), lambda: None)  # noqa: B023
        host = median_ms(lambda: letterbox_gpu(img, size, out=dout), sync)  # noqa: B023
        dev = median_ms(lambda: letterbox_gpu(dimg, size, out=dout), sync)  # noqa: B023
        rows += [
            {"section": "letterbox", "name": name, "path": "cpu (cv2)", "ms": cpu},
            {"section": "letterbox", "name": name, "path": "gpu, host frame (incl. upload)", "ms": host},
            {"section": "letterbox", "name": name, "path": "gpu, frame on device", "ms": dev},
        ]
    return rows


def model_preds(size: int) -> tuple[np.ndarray, float]:
    """Decoded yolox-nano output [N, 85] on a real-looking image at ``size``, and the ratio."""
    import torch

    from tests.gpu.conftest import test_image

    model, _ = load_yolox("yolox-nano", "cuda")
    x, r = letterbox(test_image(), (size, size))
    with torch.inference_mode():
        return model(torch.from_numpy(x)[None].cuda())[0].float().cpu().numpy(), r


def bench_postprocess(sync: Callable[[], None]) -> list[Row]:
    import torch

    from streamyolox.ops.gpu_postprocess import PostprocessGPU

    rows = []
    for size in (416, 640):
        pred, r = model_preds(size)
        dpred = torch.from_numpy(pred).cuda()
        for thr in (0.25, 0.01):
            name = f"decode+NMS {len(pred)} anchors, thr {thr}"
            run = PostprocessGPU(thr, 0.45)
            n = len(postprocess(pred, r, thr))
            cpu = median_ms(lambda: postprocess(pred, r, thr), lambda: None)  # noqa: B023
            gpu = median_ms(lambda: run(dpred, r), sync)  # noqa: B023
            rows += [
                {"section": "postprocess", "name": name, "path": "cpu (numpy)", "ms": cpu, "kept": n},
                {"section": "postprocess", "name": name, "path": "gpu (numba.cuda)", "ms": gpu, "kept": n},
            ]
    return rows


def time_model(model: Any, batch: int, size: int, half: bool, sync: Callable[[], None]) -> float:
    """Median ms of one forward pass on a random [batch, 3, size, size] input."""
    import torch

    x = torch.rand(batch, 3, size, size, device="cuda") * 255
    x = x.half() if half else x
    with torch.inference_mode():
        return median_ms(lambda: model(x), sync, warmup=3, iters=5, repeats=3)


def bench_models(sync: Callable[[], None], deadline: float) -> list[Row]:
    import torch

    rows = []
    for name, size in (("yolox-nano", 416), ("yolox-s", 640)):
        for precision in ("fp32", "fp16"):
            half = precision == "fp16"
            model, source = load_yolox(name, "cuda", half)
            for batch in (1, 8, 32):
                row = {"section": "model", "name": f"{name} {size}", "path": f"{precision} b{batch}"}
                if time.monotonic() > deadline:
                    rows.append({**row, "skipped": "time budget"})
                    continue
                ms = time_model(model, batch, size, half, sync)
                rows.append({**row, "ms": ms, "fps": batch * 1000 / ms, "weights": source})
            model = None
            torch.cuda.empty_cache()
    return rows


def bench_chain(sync: Callable[[], None]) -> list[Row]:
    """Per frame: 1080p host frame -> letterbox -> yolox-nano 416 -> decode+NMS -> Detections."""
    import torch

    from streamyolox.ops import letterbox_gpu
    from streamyolox.ops.gpu_postprocess import PostprocessGPU

    img = frame(1080, 1920, seed=1)
    rows = []
    for precision in ("fp32", "fp16"):
        half = precision == "fp16"
        model, _ = load_yolox("yolox-nano", "cuda", half)
        post = PostprocessGPU(0.25, 0.45)

        def gpu_chain() -> Any:
            x, r = letterbox_gpu(img, (416, 416))
            t = torch.as_tensor(x, device="cuda")[None]
            with torch.inference_mode():
                pred = model(t.half() if half else t)[0]  # noqa: B023
            return post(pred, r)  # noqa: B023

        def cpu_pre_post() -> Any:
            x, r = letterbox(img, (416, 416))
            t = torch.from_numpy(x)[None].cuda()
            with torch.inference_mode():
                pred = model(t.half() if half else t)[0].float().cpu().numpy()  # noqa: B023
            return postprocess(pred, r)

        for path, fn in (("gpu letterbox+NMS", gpu_chain), ("cpu letterbox+NMS", cpu_pre_post)):
            ms = median_ms(fn, sync, warmup=5, iters=10, repeats=5)
            rows.append({"section": "chain", "name": f"1080p frame -> nano 416 {precision}", "path": path,
                         "ms": ms, "fps": 1000 / ms})
    return rows


def machine() -> dict[str, Any]:
    import cupy as cp
    import numba
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cupy": cp.__version__,
            "numba": numba.__version__, "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    try:
        import subprocess

        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                        text=True, timeout=10).stdout.strip() or None
    except OSError:
        info["commit"] = None
    return info


def print_table(rows: list[Row]) -> None:
    lines = [f"{'section':<12} {'case':<34} {'path':<32} {'ms':>9} {'frames/s':>10}"]
    for row in rows:
        ms = f"{row['ms']:.3f}" if "ms" in row else row.get("skipped", row.get("error", "-"))
        fps = f"{row['fps']:.0f}" if "fps" in row else ""
        lines.append(f"{row['section']:<12} {row['name']:<34} {row['path']:<32} {ms:>9} {fps:>10}")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=str(Path(out) / "gpu_bench.json") if out else None)
    parser.add_argument("--budget-s", type=float, default=150.0, help="skip the remaining model runs after this")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_bench: no CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    start = time.monotonic()
    sync = torch.cuda.synchronize
    rows: list[Row] = []
    sections: list[tuple[str, Callable[[], list[Row]]]] = [
        ("letterbox", lambda: bench_letterbox(sync)),
        ("postprocess", lambda: bench_postprocess(sync)),
        ("chain", lambda: bench_chain(sync)),
        ("model", lambda: bench_models(sync, start + args.budget_s)),
    ]
    for name, fn in sections:
        t0 = time.monotonic()
        try:
            rows += fn()
        except Exception as exc:  # one broken section must not hide the others' numbers
            rows.append({"section": name, "name": "-", "path": "-", "error": f"{type(exc).__name__}: {exc}"[:200]})
        print(f"gpu_bench: {name} done in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    result = {"machine": machine(), "weights": str(find_weights() or "random init"), "rows": rows,
              "elapsed_s": time.monotonic() - start}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"\nGPU: {result['machine']['gpu']}  weights: {result['weights']}  elapsed {result['elapsed_s']:.0f}s")
    print_table(rows)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
