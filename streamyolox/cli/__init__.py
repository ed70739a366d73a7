"""`streamyolox` command line: each sub-command lives in its own module with `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules under streamyolox.cli, each exposing `register(subparsers) -> None`; the parser they add sets
# `func(args) -> int` as its default.
COMMAND_MODULES: tuple[str, ...] = (
    "detect",
    "weights",
    "bench",
    "run",
    "subscribe",
    "streams",
    "keys",
    "train",
    "eval",
)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a sub-command, only that one's module is imported: all of them took
    0.32 s (rich, asyncio, zmq.auth for `streams`, `weights`, `bench`), on the path to a run's first frame.
    Anything else (`--help`, a typo) gets every sub-command, for the full list."""
    parser = argparse.ArgumentParser(prog="streamyolox", description="Real-time YOLOX video analytics.")
    parser.add_argument("--version", action="version", version="streamyolox 0.1.0")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = [argv[0]] if argv and argv[0] in COMMAND_MODULES else None
    for name in named or COMMAND_MODULES:
        importlib.import_module(f"streamyolox.cli.{name}").register(subparsers)
    return parser


def _exit_now(code: int) -> None:
    """End the `run` program without the interpreter's teardown of the modules it loaded (numpy, PyAV, zmq,
    ...: 0.1-0.4 s on the 2-core machine, after the run was over). Everything of the run is closed by now;
    the atexit handlers (multiprocessing's temp folders, logging) still run."""
    import atexit
    import logging
    import os

    logging.shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None  # `streamyolox ...` itself, not a caller that wants the int back
    running = (sys.argv[1:] if argv is None else argv)[:1] == ["run"]
    if running:
        from streamyolox.graph import forkserver

        # before the parser is built (0.35 s of imports): the stages' modules load meanwhile, on another core
        forkserver.start()
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        if running and as_program:
            _exit_now(code)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `streamyolox stages | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
