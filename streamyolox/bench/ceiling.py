"""What the cores could do with no pipeline at all: `python -m streamyolox.bench.ceiling CLIP ONNX`.

The work a pipeline cannot avoid, measured alone in one process on one core, in CPU time:

- `decode_ms`: PyAV decoding the clip's H.264 (one FFmpeg thread);
- `yuv_letterbox_ms`: `streamyolox.ops.letterbox_yuv420` from the decoder's planes to the model's uint8
  input (what the default placement does, `pixel_format: auto`);
- `bgr_ms` and `letterbox_ms`: the other way, for `pixel_format: bgr24`: the frame converted to BGR by
  swscale (`to_ndarray("bgr24")`: the same pixels as `cv2.VideoCapture`, so as the official demo), then
  `streamyolox.ops.letterbox`;
- `infer_ms`: onnxruntime with 1 intra-op thread at batch 1 on the official export (float32 input).

The ceiling on `cores` cores is `cores * 1000 / (decode + yuv letterbox + inference)` frames/s
(`ceiling_bgr_fps` with the BGR way instead): every core busy with nothing
but that work, no transport, no NMS, no JSON, no start-up, and no slowdown from sharing caches (two
inference processes at once each ran ~5% slower than alone on a 2-core AMD EPYC). A real pipeline stays
below it, so a target above it cannot be met by any placement. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def media_ms(clip: Path, frames: int, size: int) -> dict[str, float]:
    """CPU ms per frame of decode, letterbox from the planes, BGR conversion and letterbox from BGR over the
    clip's first `frames` frames (the planes' letterbox right after the decode, as in the decode stage)."""
    import av

    from streamyolox.ops import letterbox, letterbox_yuv420
    from streamyolox.sources.av_reader import yuv420_planes

    spent = dict.fromkeys(("decode_ms", "yuv_letterbox_ms", "bgr_ms", "letterbox_ms"), 0.0)
    count = 0
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        decoded = container.decode(stream)
        while count < frames:
            t0 = time.process_time()
            frame = next(decoded, None)
            if frame is None:
                break
            t1 = time.process_time()
            planes = yuv420_planes(frame)
            if planes is None:
                raise SystemExit(f"ceiling: {clip} is {frame.format.name}, not 4:2:0 (no planes to letterbox)")
            letterbox_yuv420(planes, (size, size), dtype=np.uint8)
            t2 = time.process_time()
            image = frame.to_ndarray(format="bgr24")
            t3 = time.process_time()
            letterbox(image, (size, size), dtype=np.uint8)
            t4 = time.process_time()
            for key, spent_s in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                spent[key] += spent_s
            count += 1
    if not count:
        raise SystemExit(f"ceiling: no frame decoded from {clip}")
    return {k: 1e3 * v / count for k, v in spent.items()} | {"frames": count}


def infer_ms(onnx: Path, calls: int, size: int) -> float:
    """CPU ms per batch-1 call of onnxruntime with one thread (median of blocks of 20 calls)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).integers(0, 256, (1, 3, size, size)).astype(np.float32)
    for _ in range(5):
        session.run(None, {name: x})
    blocks = []
    for _ in range(max(1, calls // 20)):
        t0 = time.process_time()
        for _ in range(20):
            session.run(None, {name: x})
        blocks.append((time.process_time() - t0) / 20)
    return 1e3 * float(np.median(blocks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path)
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--frames", type=int, default=300, help="frames decoded and model calls timed")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    for path in (args.clip, args.onnx):
        if not path.is_file():
            raise SystemExit(f"ceiling: {path} not found")
    parts = media_ms(args.clip, args.frames, args.size)
    parts["infer_ms"] = infer_ms(args.onnx, args.frames, args.size)
    per_frame = parts["decode_ms"] + parts["yuv_letterbox_ms"] + parts["infer_ms"]
    per_frame_bgr = parts["decode_ms"] + parts["bgr_ms"] + parts["letterbox_ms"] + parts["infer_ms"]
    print(json.dumps({**parts, "cores": args.cores, "core_ms_per_frame": per_frame,
                      "ceiling_fps": args.cores * 1e3 / per_frame, "ceiling_bgr_fps": args.cores * 1e3 / per_frame_bgr}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
