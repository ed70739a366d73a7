"""`streamyolox bench model|ops|pipeline FILE.yaml|all|capacity FILE.yaml`: measure, print a table, write JSON
and a plot."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """`$STREAMYOLOX_SHARED`, else `../shared` beside the current directory, else beside the checkout."""
    env = os.environ.get("STREAMYOLOX_SHARED")
    if env:
        return Path(env)
    for cand in (Path.cwd().parent / "shared", REPO.parent / "shared"):
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared"


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", type=Path, metavar="FILE", help="write results (with the machine info) as JSON")
    p.add_argument("--plot", type=Path, metavar="PNG", help="write throughput/latency bar charts")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per case (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="intra-op threads for torch and onnxruntime alike (default: usable cores)")
    p.add_argument("--model", default="yolox-nano", help="zoo name (default yolox-nano)")
    p.add_argument("--weights", help="checkpoint or zoo name (default: ../shared/weights/yolox_nano.pth)")
    p.add_argument("--bare-onnx", type=Path, help="baseline ONNX (default: ../shared/weights/yolox_nano.onnx)")
    p.add_argument("--markdown", type=Path, metavar="MD",
                   help="fill the bench-results section of this file (e.g. benchmarks/README.md)")
    p.add_argument("--include", type=Path, action="append", default=[], metavar="JSON",
                   help="merge result rows of another bench JSON (e.g. the official demo baseline)")


def _add_model_opts(p: argparse.ArgumentParser) -> None:
    from streamyolox.bench.model_bench import BACKENDS

    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma list of {', '.join(BACKENDS)}")
    p.add_argument("--batches", type=_ints, default=[1, 4, 8], help="comma list (default 1,4,8)")
    p.add_argument("--sizes", type=_ints, default=[320, 416, 640], help="comma list (default 320,416,640)")


def _add_ops_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--transport-frames", type=int, default=500, help="frames per transport run (default 500)")
    p.add_argument("--transport-repeats", type=int, default=3, help="transport runs per edge (median kept)")


def _add_pipeline_opts(p: argparse.ArgumentParser, positional: bool) -> None:
    if positional:
        p.add_argument("file", type=Path, help="pipeline YAML")
    else:
        p.add_argument("--pipeline", dest="file", type=Path, help="pipeline YAML (skipped when absent)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override passed to `streamyolox run` (repeatable)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before the run is stopped")


def _add_capacity(sub: Any) -> None:
    p = sub.add_parser("capacity", help="how many real-time streams a pipeline sustains (adds them one by one)",
                       description="Copies of a clip played as cameras (realtime, looped), one more after each "
                                   "measuring window (POST /streams), until a stream misses the target fps or "
                                   "the frame-age budget; JSON and a plot of fps and age against the stream "
                                   "count (default under benchmarks/results/).")
    p.add_argument("file", type=Path, help="pipeline YAML (its decode stage reads the streams)")
    p.add_argument("--target-fps", type=float, default=15.0, help="frames/s every stream must keep (default 15)")
    p.add_argument("--max-age-ms", type=float, default=500.0, help="frame age p99 budget at the sinks (default 500)")
    p.add_argument("--clip", type=Path, default=None,
                   help="video played by every stream (default: ../shared/media/street_pan_720p.mp4)")
    p.add_argument("--max-streams", type=int, default=16, help="stop after this many (default 16)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds after adding a stream before measuring")
    p.add_argument("--window", type=float, default=10.0, help="measuring window per step in seconds")
    p.add_argument("--fps-tolerance", type=float, default=0.05,
                   help="a stream holds at target x (1 - this) frames/s (default 0.05)")
    p.add_argument("--source", default=None, help="the decode stage (needed when there are several)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override passed to `streamyolox run` (repeatable)")
    p.add_argument("--json", type=Path, metavar="FILE", help="result JSON (default benchmarks/results/capacity_<name>.json)")
    p.add_argument("--plot", type=Path, metavar="PNG", help="plot (default: the JSON's name with .png)")
    p.set_defaults(func=run_capacity_cli)


def run_capacity_cli(args: argparse.Namespace) -> int:
    from streamyolox.bench.capacity import CapacityConfig, plot, run_capacity, write_json

    clip = args.clip or shared_dir() / "media" / "street_pan_720p.mp4"
    for path, what in ((args.file, "pipeline file"), (clip, "--clip")):
        if not path.is_file():
            print(f"streamyolox bench: {what} {path} not found", file=sys.stderr)
            return 2
    try:
        cfg = CapacityConfig(args.file, clip.resolve(), args.target_fps, args.max_age_ms, args.max_streams,
                             args.warmup, args.window, args.fps_tolerance, args.source, list(args.overrides))
        doc = run_capacity(cfg, lambda msg: print(msg, file=sys.stderr, flush=True))
    except (RuntimeError, ValueError, OSError) as exc:  # a failed run, a bad spec or option: one line
        print(f"streamyolox bench: {exc}", file=sys.stderr)
        return 1
    out = args.json or REPO / "benchmarks" / "results" / f"capacity_{args.file.stem}.json"
    write_json(out, doc)
    plot(doc, args.plot or out.with_suffix(".png"))
    print(f"{doc['max_streams_sustained']} stream(s) sustained at {cfg.target_fps:g} fps within "
          f"{cfg.max_age_ms:g} ms ({doc['stopped']}); {out}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmark the model, the ops and whole pipelines",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    _add_capacity(sub)
    for name, text in (("model", "each backend x batch x input size vs onnxruntime's bare model"),
                       ("ops", "letterbox, decode+NMS and transport vs their references and memcpy"),
                       ("pipeline", "a pipeline end to end on a file: frames/s, frame age, RSS"),
                       ("all", "model, ops and (with --pipeline) a pipeline")):
        p = sub.add_parser(name, help=text, description=text)
        _add_common(p)
        if name in ("model", "all"):
            _add_model_opts(p)
        if name in ("ops", "all"):
            _add_ops_opts(p)
        if name in ("pipeline", "all"):
            _add_pipeline_opts(p, positional=name == "pipeline")
        p.set_defaults(func=run)


def _defaults(args: argparse.Namespace) -> None:
    shared = shared_dir()
    if args.weights is None:
        pth = shared / "weights" / "yolox_nano.pth"
        args.weights = str(pth) if args.model == "yolox-nano" and pth.exists() else args.model
    if args.bare_onnx is None and args.model == "yolox-nano":
        args.bare_onnx = _existing(shared / "weights" / "yolox_nano.onnx")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("streamyolox bench: --repeats and --threads must be >= 1, --warmup >= 0")


def _model(args: argparse.Namespace, log: Any) -> list:
    from streamyolox.bench.model_bench import ModelBenchConfig, run_model_bench

    cfg = ModelBenchConfig(model=args.model, weights=args.weights, bare_onnx=args.bare_onnx,
                           backends=[b for b in args.backends.split(",") if b], batches=args.batches,
                           sizes=args.sizes, threads=args.threads, repeats=args.repeats, warmup=args.warmup)
    return run_model_bench(cfg, log)


def _ops(args: argparse.Namespace, log: Any) -> list:
    from streamyolox.bench.ops_bench import OpsBenchConfig, run_ops_bench

    media = shared_dir() / "media"
    cfg = OpsBenchConfig(videos={"720p": _existing(media / "street_pan_720p.mp4"),
                                 "1080p": _existing(media / "street_pan_1080p.mp4")},
                         bare_onnx=args.bare_onnx, weights=args.weights, model=args.model,
                         transport_script=REPO / "benchmarks" / "transport_bench.py", threads=args.threads,
                         transport_frames=args.transport_frames, transport_repeats=args.transport_repeats,
                         repeats=args.repeats, warmup=args.warmup)
    return run_ops_bench(cfg, log)


def _pipeline(args: argparse.Namespace, log: Any) -> list:
    from streamyolox.bench.pipeline_bench import PipelineBenchConfig, run_pipeline_bench

    cfg = PipelineBenchConfig(file=args.file, overrides=list(args.overrides), timeout_s=args.timeout,
                              repeats=min(args.repeats, 3))
    return run_pipeline_bench(cfg, log)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamyolox.bench import report
    from streamyolox.bench.harness import link_refs
    from streamyolox.bench.machine import machine_info

    for path, what in ((getattr(args, "file", None), "pipeline file"), *((p, "--include file") for p in args.include),
                       (args.markdown, "--markdown file")):
        if path is not None and not path.exists():
            print(f"streamyolox bench: {what} {path} not found", file=sys.stderr)
            return 2
    _defaults(args)
    console = Console(stderr=True)
    log = lambda msg: console.log(msg)  # noqa: E731
    results: list = []
    try:
        if args.suite in ("model", "all"):
            results += _model(args, log)
        if args.suite in ("ops", "all"):
            results += _ops(args, log)
        if args.suite == "pipeline" or (args.suite == "all" and args.file is not None):
            results += _pipeline(args, log)
        for extra in args.include:
            results += report.load_results(extra)[1]
    except (RuntimeError, ValueError, OSError) as exc:  # a failed run, a bad spec or file: one line
        print(f"streamyolox bench: {exc}", file=sys.stderr)
        return 1
    link_refs(results)
    report.print_results(results)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"}
    settings["include"] = [str(p) for p in args.include]
    document = report.to_document(results, machine_info(), settings)
    if args.json:
        report.write_json(args.json, document)
    if args.markdown:
        report.update_markdown(args.markdown, document)
    if args.plot:
        report.plot(results, args.plot)
    return 0
