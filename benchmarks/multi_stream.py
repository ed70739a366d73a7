"""Issue 11's target, side by side: N file streams (720p) through one multi-stream pipeline against one
stream through `pipelines/demo.yaml`, interleaved round after round on the same machine.

    .venv/bin/python benchmarks/multi_stream.py --streams 4 --rounds 2 \
        --json benchmarks/results/multi_stream_cpu_DATE.json

Reports, per case, the aggregate frames/s in steady state and over the whole run (start-up included), peak
RSS, and checks that every stream's detections equal its single-stream run (the same frames; boxes within
0.02 px, scores within 1e-3): the multi-stream pipeline batches frames of different streams together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from streamyolox.bench.harness import Result
from streamyolox.bench.machine import machine_info
from streamyolox.bench.pipeline_bench import PipelineBenchConfig, run_pipeline_bench
from streamyolox.bench.report import print_results, to_document, write_json

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMYOLOX_SHARED", REPO.parent / "shared"))
BOX_TOL, SCORE_TOL = 0.02, 1e-3  # the bounds


def read_frames(path: Path) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """stream -> frame -> detections, from a JSON-lines file."""
    out: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["stream"]][rec["frame"]] = rec["detections"]
    return out


def parity(single: dict[int, list[dict[str, Any]]], multi: dict[str, dict[int, list[dict[str, Any]]]]) -> dict:
    """Worst differences of every stream of `multi` against the single-stream run."""
    worst_box, worst_score, problems = 0.0, 0.0, []
    for stream, frames in sorted(multi.items()):
        if sorted(frames) != sorted(single):
            problems.append(f"{stream}: frames {len(frames)} != {len(single)} of the single run")
            continue
        for i, want in single.items():
            got = frames[i]
            if [d["class_id"] for d in got] != [d["class_id"] for d in want]:
                problems.append(f"{stream} frame {i}: classes differ")
                continue
            if want:
                worst_box = max(worst_box, float(np.abs(np.array([d["bbox"] for d in got])
                                                        - np.array([d["bbox"] for d in want])).max()))
                worst_score = max(worst_score, float(np.abs(np.array([d["score"] for d in got])
                                                            - np.array([d["score"] for d in want])).max()))
    ok = not problems and worst_box <= BOX_TOL and worst_score <= SCORE_TOL
    return {"ok": ok, "max_box_px": worst_box, "max_score": worst_score, "problems": problems[:5]}


def case(file: Path, sets: list[str], out: Path, name: str) -> Result:
    top = run_pipeline_bench(PipelineBenchConfig(file, [*sets, f"stages.json.path={out}"]))[0]
    top.name = name
    return top


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=SHARED / "media" / "street_pan_720p.mp4")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "yolox_nano.pth")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                        help="extra overrides of the multi-stream pipeline")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for f in (args.video, args.weights):
        if not f.exists():
            raise SystemExit(f"multi_stream: {f} not found (set STREAMYOLOX_SHARED)")
    base = [f"model.weights={args.weights}"]
    multi_sets = [*base, *(f"stages.source.streams.cam{i}={args.video}" for i in range(args.streams)), *args.sets]
    rows: list[Result] = []
    checks: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="syx-multi-") as tmp:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            one, many = Path(tmp) / f"one{r}.jsonl", Path(tmp) / f"many{r}.jsonl"
            rows.append(case(REPO / "pipelines" / "demo.yaml", [*base, f"stages.source.url={args.video}"], one,
                             "demo, 1 stream"))
            rows.append(case(REPO / "pipelines" / "multi_camera.yaml", multi_sets, many,
                             f"multi_camera, {args.streams} streams"))
            checks.append(parity(next(iter(read_frames(one).values())), read_frames(many)))
            ratio = (rows[-1].fps or 0) / (rows[-2].fps or 1)
            print(f"  steady {rows[-2].fps:.1f} vs {rows[-1].fps:.1f} frames/s ({ratio:.2f}x); parity {checks[-1]}",
                  file=sys.stderr, flush=True)
    print_results(rows)
    document = to_document(rows, machine_info(), {k: str(v) for k, v in vars(args).items()})
    document["parity"] = checks
    document["ratios"] = [
        {"steady": (rows[i + 1].fps or 0) / (rows[i].fps or 1),
         "with_startup": rows[i + 1].extra["fps_wall"] / rows[i].extra["fps_wall"]}
        for i in range(0, len(rows), 2)]
    print(json.dumps({"ratios": document["ratios"], "parity": checks}, indent=1))
    if args.json:
        write_json(args.json, document)
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
