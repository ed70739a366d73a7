"""Ops bench smoke tests: letterbox, decode+NMS on real model output, transport over every edge kind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from streamyolox.bench.harness import link_refs
from streamyolox.bench.ops_bench import (
    OpsBenchConfig,
    bench_decode_nms,
    bench_letterbox,
    bench_transport,
    memcpy_floor,
    real_frame,
)
from streamyolox.ops import letterbox_ref

REPO = Path(__file__).resolve().parents[2]


def test_real_frame_decodes_the_video(street_720p: Path) -> None:
    frame = real_frame(street_720p, "720p", index=3)
    assert frame.shape == (720, 1280, 3) and frame.dtype == np.uint8 and frame.std() > 10


def test_letterbox_rows_compare_with_the_reference() -> None:
    frame = real_frame(None, "720p")
    rows = bench_letterbox({"720p": frame}, (416,), repeats=2, warmup=0)
    link_refs(rows)
    assert [r.name for r in rows] == ["letterbox_ref 720p->416", "letterbox f32 720p->416",
                                      "letterbox u8 720p->416"]
    assert all(r.fps > 0 and r.p50_ms > 0 for r in rows)
    assert rows[1].ref == rows[0].name and rows[1].ratio > 0


def test_decode_nms_uses_real_detections(street_720p: Path, nano_onnx: Path) -> None:
    frame = real_frame(street_720p, "720p")
    cfg = OpsBenchConfig(videos={}, bare_onnx=nano_onnx, sizes=(416,), repeats=2, warmup=0)
    rows = bench_decode_nms(cfg, frame, lambda s: letterbox_ref(frame, (s, s))[1])
    assert [r.name for r in rows] == ["decode+nms ref 3549", "decode+nms 3549"]
    assert rows[0].params["anchors"] == 3549 and rows[0].params["detections"] > 5  # a busy street
    assert all(r.fps > 0 for r in rows)


def test_transport_over_each_edge_kind_vs_memcpy() -> None:
    before = set(Path(tempfile.gettempdir()).glob("syx-bench-*"))
    frame = np.random.default_rng(1).integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
    cfg = OpsBenchConfig(videos={}, transport_script=REPO / "benchmarks" / "transport_bench.py",
                         transport_frames=10, transport_repeats=1, repeats=2, warmup=0)
    rows = bench_transport(cfg, {"720p": frame}, lambda s: None)
    link_refs(rows)
    names = [r.name for r in rows]
    assert names[:2] == ["memcpy 720p", "memcpy 720p 8 buffers"] and rows[0].params["bytes"] == frame.nbytes
    assert {"transport inproc 720p", "transport tcp 720p", "transport ipc 720p"} <= set(names)
    for r in rows[2:]:
        if r.skipped:  # the ipc edge needs the runtime's script from the checkout
            assert r.params["edge"] == "ipc"
            continue
        assert r.fps > 0 and r.ref == "memcpy 720p" and r.ratio > 0
    assert set(Path(tempfile.gettempdir()).glob("syx-bench-*")) - before == set()  # its run folder removed


def test_memcpy_floor_counts_bytes() -> None:
    row = memcpy_floor(1 << 20, repeats=2, warmup=0, name="memcpy 1MiB")
    assert row.fps > 0 and row.params == {"op": "memcpy", "bytes": 1 << 20, "buffers": 1}
