"""Issue 14's side-by-side run on this machine: pipelines vs bare onnxruntime / OpenVINO vs the official demo.

    .venv/bin/python benchmarks/side_by_side.py --rounds 2 --official \
        --json benchmarks/results/side_by_side_cpu_DATE.json --plot benchmarks/results/side_by_side_cpu_DATE.png \
        --markdown benchmarks/README.md

Runs `streamyolox.bench.side_by_side` on the 720p street pan remuxed to `--frames` frames (900 by default),
`pipelines/demo.yaml` and `pipelines/rtsp_to_json.yaml` by default, and fills the section between the
`<!-- side-by-side:start -->` / `<!-- side-by-side:end -->` markers of `--markdown`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from streamyolox.bench.machine import machine_info
from streamyolox.bench.report import plot, print_results, to_document, write_json
from streamyolox.bench.side_by_side import SideBySideConfig, markdown_table, remux_copies, run_side_by_side

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STREAMYOLOX_SHARED", REPO.parent / "shared"))
START, END = "<!-- side-by-side:start -->", "<!-- side-by-side:end -->"


def fill(path: Path, text: str) -> None:
    doc = path.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"side_by_side: {path} has no {START} ... {END} section")
    head, rest = doc.split(START, 1)
    path.write_text(f"{head}{START}\n{text}\n{END}{rest.split(END, 1)[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", dest="pipelines", type=Path, action="append",
                        help="pipeline YAML (repeatable; default demo.yaml and rtsp_to_json.yaml)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--video", type=Path, default=SHARED / "media" / "street_pan_720p.mp4")
    parser.add_argument("--frames", type=int, default=900, help="clip length: the video remuxed (default 900)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="threads of the bare runtimes (default 2)")
    parser.add_argument("--official", action="store_true", help="also run the official demo baseline")
    parser.add_argument("--no-before", action="store_true",
                        help="leave out each pipeline as it ran before (spawned, a process per stage)")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="leave out the no-pipeline ceiling (decode + BGR + letterbox + inference alone)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="leave out the run on an empty cache and the untimed run of each pipeline before round 1")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    weights, onnx = SHARED / "weights" / "yolox_nano.pth", SHARED / "weights" / "yolox_nano.onnx"
    for f in (args.video, weights, onnx):
        if not f.exists():
            raise SystemExit(f"side_by_side: {f} not found (set STREAMYOLOX_SHARED)")
    import av

    with av.open(str(args.video)) as c:
        per_copy = c.streams.video[0].frames or 300
    copies = max(1, round(args.frames / per_copy))
    clip = remux_copies(args.video, Path(tempfile.gettempdir()) / f"{args.video.stem}_x{copies}.mp4", copies)
    cfg = SideBySideConfig(clip=clip, weights=weights, onnx=onnx, overrides=args.sets, frames=per_copy * copies,
                           pipelines=args.pipelines or [REPO / "pipelines" / "demo.yaml",
                                                        REPO / "pipelines" / "rtsp_to_json.yaml"],
                           threads=args.threads, rounds=args.rounds, before=not args.no_before,
                           ceiling=not args.no_ceiling, warmup=not args.no_warmup,
                           official_demo=REPO / "benchmarks" / "official_demo_baseline.py" if args.official else None)
    rows = run_side_by_side(cfg, lambda msg: print(msg, file=sys.stderr, flush=True))
    print_results(rows)
    document = to_document(rows, machine_info(), {k: str(v) for k, v in vars(args).items()})
    if args.json:
        write_json(args.json, document)
    if args.plot:
        plot(rows, args.plot, title=f"side by side, {cfg.frames} frames 720p")
    if args.markdown:
        fill(args.markdown, markdown_table(document))
    print(markdown_table(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
