"""Compare placements and thread counts of one pipeline, interleaved so that all variants see the same load.

    python benchmarks/pipeline_variants.py pipelines/demo.yaml --rounds 2 \
        --set stages.source.url=../shared/media/street_pan_720p.mp4 --set model.weights=../shared/weights/yolox_nano.pth

Variants (each adds `--set` overrides to the common ones): `default`; `detect-1t` (the yolox stage on one
intra-op thread); `one-worker` (every stage in one process, edges inproc); `one-worker-detect-1t`. Each row:
steady-state frames/s, frames/s with start-up, peak RSS and PSS of the process tree, mean busy ms per frame
of each stage. `--json F` writes a `streamyolox bench` document (suite `pipeline`, one row per variant).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streamyolox.bench.harness import Result
from streamyolox.bench.machine import machine_info
from streamyolox.bench.pipeline_bench import PipelineBenchConfig, run_pipeline_bench
from streamyolox.bench.report import print_results, to_document, write_json
from streamyolox.graph.validate import load_pipeline


def variants(file: Path, sets: list[str], detect: str) -> dict[str, list[str]]:
    stages = list(load_pipeline(file, sets).stages)
    one = [f"stages.{sid}.worker=all" for sid in stages]
    return {"default": [], "detect-1t": [f"stages.{detect}.threads=1"], "one-worker": one,
            "one-worker-detect-1t": [*one, f"stages.{detect}.threads=1"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--detect", default="detect", help="id of the yolox stage (default detect)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, interleaved (median kept)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.file.exists():
        raise SystemExit(f"pipeline_variants: {args.file} not found")
    runs: dict[str, list[Result]] = {}
    for rnd in range(args.rounds):
        for name, extra in variants(args.file, args.sets, args.detect).items():
            row = run_pipeline_bench(PipelineBenchConfig(args.file, [*args.sets, *extra]))[0]
            row.name, row.params["variant"] = name, extra
            row.extra["load_avg_1m"] = os.getloadavg()[0]
            runs.setdefault(name, []).append(row)
            print(f"round {rnd + 1} {name}: {row.fps:.1f} frames/s", file=sys.stderr)
    rows = [sorted(r, key=lambda x: x.fps or 0.0)[len(r) // 2] for r in runs.values()]
    for row in rows:
        row.ref = "default"
        row.ratio = row.fps / rows[0].fps if row.fps and rows[0].fps else None
    print_results(rows)
    if args.json:
        write_json(args.json, to_document(rows, machine_info(), {"file": str(args.file), "sets": args.sets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
