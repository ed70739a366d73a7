"""`streamyolox run | validate | stages`: run a pipeline YAML, check one, list the stage kinds."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from streamyolox.graph.preflight import SpecError, check_pipeline_file
from streamyolox.graph.spec import PipelineSpec


def register(subparsers: argparse._SubParsersAction) -> None:
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument("file", help="pipeline YAML")
    overrides.add_argument("--set", dest="sets", action="append", default=[], metavar="PATH=VALUE",
                           help="override a value before validation, e.g. stages.source.url=clip.mp4; "
                                "stages.source.streams.cam.1=clip.mp4 adds stream cam.1 (all after streams. is "
                                "the id), stages.source.streams[cam.1].max_fps=5 sets one of its options")

    p = subparsers.add_parser("run", parents=[overrides], help="run a pipeline YAML")
    p.add_argument("--metrics-json", default=None, metavar="FILE", help="write the final metrics here")
    p.add_argument("--http", type=int, default=None, metavar="PORT",
                   help="serve Prometheus /metrics, JSON /health, the streams API and the camera wall on "
                        "this port (0: any free one, logged)")
    p.add_argument("--http-host", default=None, metavar="ADDR",
                   help="the address the HTTP server binds (default 127.0.0.1; beyond it --http-token is needed)")
    p.add_argument("--http-token", default=None, metavar="TOKEN",
                   help="clients send Authorization: Bearer TOKEN (default: metrics.http_token)")
    p.add_argument("--no-dashboard", action="store_true", help="plain log lines even on a terminal")
    p.add_argument("--only", default=None, metavar="IDS",
                   help="comma-separated stage ids to run on this host (the others run elsewhere)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--executor", default=None, choices=["local", "ray"],
                   help="where the stage processes run: here (local, the default) or on a Ray cluster "
                        "(pip install 'streamyolox[ray]'; docs/cluster.md)")
    p.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                   help="the Ray cluster to join (ray start --head); default: RAY_ADDRESS or a local one")
    p.add_argument("--shards", type=_positive_int, default=None, metavar="N",
                   help="ray: split the sources' streams over N copies of the pipeline, spread over the nodes")
    p.set_defaults(func=cmd_run)

    v = subparsers.add_parser("validate", parents=[overrides], help="check a pipeline YAML")
    v.set_defaults(func=cmd_validate)

    s = subparsers.add_parser("stages", help="list stage kinds with their options")
    s.add_argument("kinds", nargs="*", help="only these kinds (built-in names or module:Class)")
    s.set_defaults(func=cmd_stages)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def _error(message: str) -> int:
    print(f"streamyolox: error: {message}", file=sys.stderr)
    return 2


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        spec = check_pipeline_file(args.file, args.sets)
    except SpecError as exc:
        return _error(str(exc))
    edges = spec.edges()
    print(f"{args.file}: ok: pipeline {spec.name!r}, {len(spec.stages)} stages, {len(edges)} edges "
          f"({', '.join(f'{a}->{b}' for a, b in edges)})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    only = None if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    from streamyolox.graph import forkserver

    forkserver.start()  # it imports what the stages need while this process validates (graph/forkserver.py)
    try:
        # zoo weights missing here are downloaded now, once, rather than by each stage process
        spec = check_pipeline_file(args.file, args.sets, only=only, download=True, http_port=args.http,
                                   metrics_json=args.metrics_json)
        check_http_flags(spec, args)
    except (SpecError, ValueError) as exc:
        forkserver.stop()  # nothing runs: no stage, nor the server that would have forked them
        return _error(str(exc))
    from streamyolox.graph.runner import RunOptions, run_pipeline

    options = RunOptions(metrics_json=args.metrics_json, http_port=args.http, http_host=args.http_host,
                         http_token=args.http_token,
                         dashboard=not args.no_dashboard and sys.stderr.isatty(), only=only,
                         executor=args.executor, ray_address=args.ray_address, shards=args.shards)
    result = run_pipeline(spec, options)
    if result.error:
        print(f"streamyolox: error: {result.error}", file=sys.stderr)
    return result.exit_code


def check_http_flags(spec: PipelineSpec, args: argparse.Namespace) -> None:
    """--http-host / --http-token with the pipeline's metrics block: no bind beyond loopback without a token."""
    from streamyolox.graph.spec import check_http_bind

    host = args.http_host or spec.metrics.http_host
    token = args.http_token or spec.metrics.http_token
    check_http_bind(host, token, "--http-host" if args.http_host else "metrics.http_host",
                    "--http-token" if args.http_host or not spec.metrics.http_token else "metrics.http_token")


def _type_name(tp: object) -> str:
    from streamyolox.graph.options import _name

    return _name(tp)


def describe_kind(kind: str) -> list[str]:
    """Lines describing one stage kind (or saying why it is unavailable)."""
    from streamyolox.config_fields import field_range
    from streamyolox.graph.options import dataclass_fields
    from streamyolox.stages.registry import StageKindError, load_stage_class

    try:
        cls = load_stage_class(kind)
    except StageKindError as exc:
        return [f"{kind}  (unavailable: {exc})"]
    role = "source" if cls.is_source else "sink" if cls.is_sink else "stage"
    lines = [f"{kind}  [{role}]  {cls.description or (cls.__doc__ or '').strip().splitlines()[0:1]}"]
    ranges = {f.name: field_range(f) for f in dataclasses.fields(cls.Config)}
    for name, (tp, required, default) in dataclass_fields(cls.Config).items():
        shown = "required" if required else f"default {default!r}"
        rng = ranges.get(name)
        if rng is not None:  # the same rule __post_init__ enforces (streamyolox.config_fields)
            shown += f"; {rng.describe()}"
        lines.append(f"    {name}: {_type_name(tp)}  ({shown})")
    if not dataclasses.fields(cls.Config):
        lines.append("    (no options)")
    return lines


def cmd_stages(args: argparse.Namespace) -> int:
    from streamyolox.stages.registry import BUILTIN_STAGES

    for kind in args.kinds or list(BUILTIN_STAGES):
        print("\n".join(describe_kind(kind)))
    print("\nEvery stage also takes: inputs, worker, queue (8), policy (block|drop_oldest), "
          "restart (never|on-failure), max_restarts (3), listen (tcp://host:port), threads, replicas (1), "
          "resources ({num_cpus, num_gpus}: placement on a Ray cluster).")
    return 0


def main(argv: list[str] | None = None) -> int:
    """These three commands alone (`python -m streamyolox.cli.run run FILE`), without the other modules."""
    parser = argparse.ArgumentParser(prog="streamyolox")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
