"""A bare runtime on the official ONNX export, as its own process: `python -m streamyolox.bench.bare`.

    python -m streamyolox.bench.bare onnxruntime yolox_nano.onnx --frames 900 --threads 2

Batch 1, the model alone (no decode, no pre/post-processing): the baseline the pipeline is compared with.
Prints one JSON line: `startup_s` (interpreter start to the model ready, imports included), `steady_fps`
(frames over the timed loop), `p50_ms`/`p99_ms` per call. The caller times the whole process for the
frames/s with start-up, so this process counts everything a user would wait for.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

T0 = time.perf_counter()  # as early as this module runs: the interpreter's own start is the caller's to time


def ort_forward(onnx: Path, threads: int) -> Callable[[np.ndarray], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def openvino_forward(onnx: Path, threads: int) -> Callable[[np.ndarray], object]:
    import openvino as ov

    # f32 as onnxruntime and the pipeline's OpenVINO backend compute: left to itself, OpenVINO runs bf16 on
    # a CPU with AVX512-BF16 (2026-12-05, AMD EPYC: 9.4 ms a call at 1 thread against 12.5 in f32), which is
    # a faster but different model, not the same work
    compiled = ov.Core().compile_model(str(onnx), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


RUNTIMES = {"onnxruntime": ort_forward, "openvino": openvino_forward}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runtime", choices=sorted(RUNTIMES))
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=416)
    args = parser.parse_args(argv)
    forward = RUNTIMES[args.runtime](args.onnx, args.threads)
    # a letterbox-like input: the real values matter little to a CNN's speed, a fixed seed keeps it stable
    x = np.random.default_rng(0).integers(0, 256, (1, 3, args.size, args.size)).astype(np.float32)
    startup = time.perf_counter() - T0
    times = []
    start = time.perf_counter()
    for _ in range(args.frames):
        t = time.perf_counter()
        forward(x)
        times.append(time.perf_counter() - t)
    loop = time.perf_counter() - start
    print(json.dumps({"runtime": args.runtime, "threads": args.threads, "frames": args.frames,
                      "startup_s": startup, "steady_fps": args.frames / loop,
                      "p50_ms": 1e3 * float(np.percentile(times, 50)),
                      "p99_ms": 1e3 * float(np.percentile(times, 99))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
