"""`streamyolox bench model|ops|pipeline FILE.yaml|all`: measure, print a table, write JSON and a plot."""

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


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmark the model, the ops and whole pipelines",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
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
