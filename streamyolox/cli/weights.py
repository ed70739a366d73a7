"""`streamyolox weights download|list|export`: fetch official checkpoints, see what is local, export ONNX."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="download, list or export model weights")
    sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    d = sub.add_parser("download", help="fetch an official COCO checkpoint into the cache (or --dir)")
    d.add_argument("name", help="zoo name, e.g. yolox-nano")
    d.add_argument("--dir", type=Path, default=None, help="target folder (default: the cache)")
    d.set_defaults(func=run_download)

    ls = sub.add_parser("list", help="zoo models and the weights found locally")
    ls.set_defaults(func=run_list)

    e = sub.add_parser("export", help="export weights to ONNX (official export form by default)")
    e.add_argument("--weights", required=True, help="checkpoint (.pth), official ONNX export, or zoo name")
    e.add_argument("--model", default=None, help="zoo name for official files (default: inferred)")
    e.add_argument("--output", required=True, type=Path, help="the .onnx file to write")
    e.add_argument(
        "--size", type=int, nargs="+", default=None, help="input size: S or H W (default: the model's)"
    )
    e.add_argument("--opset", type=int, default=13)
    e.add_argument(
        "--decode", action="store_true", help="output decoded boxes (cx, cy, w, h) in input pixels"
    )
    e.add_argument("--static-batch", action="store_true", help="fixed batch 1 instead of a dynamic batch")
    e.set_defaults(func=run_export)


def _fail(action: str, exc: Exception) -> int:
    print(f"streamyolox weights {action}: {exc}", file=sys.stderr)
    return 1


def run_download(args: argparse.Namespace) -> int:
    from streamyolox.weights import WeightsError, download_weights

    try:
        path = download_weights(args.name, dest_dir=args.dir, show_progress=sys.stderr.isatty())
    except (WeightsError, ValueError, OSError) as exc:
        return _fail("download", exc)
    print(path)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from streamyolox.model import ZOO
    from streamyolox.weights.hub import RELEASE_FILES, find_local, search_dirs

    table = Table(title="YOLOX model zoo")
    for column in ("model", "depth", "width", "test size", "release file", "local weights"):
        table.add_column(column)
    for name, entry in ZOO.items():
        local = find_local(name)
        size = f"{entry.test_size[0]}x{entry.test_size[1]}"
        table.add_row(
            name, f"{entry.depth:g}", f"{entry.width:g}", size, RELEASE_FILES[name], str(local or "-")
        )
    console = Console()
    console.print(table)
    console.print("searched: " + ", ".join(str(d) for d in search_dirs()))
    return 0


def _input_size(size: list[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    if not size:
        return default
    if len(size) > 2:
        raise ValueError(f"--size takes S or H W, got {len(size)} numbers")
    return (size[0], size[-1])


def run_export(args: argparse.Namespace) -> int:
    from streamyolox.weights import WeightsError, export_onnx, load_model

    try:
        loaded = load_model(args.weights, name=args.model)
        size = _input_size(args.size, loaded.input_size)
        export_onnx(loaded.model, args.output, size, args.opset, not args.static_batch, args.decode)
    except (WeightsError, ValueError, OSError) as exc:
        return _fail("export", exc)
    print(
        f"{args.output}: {loaded.name}, input images [{'1' if args.static_batch else 'B'}, 3, {size[0]}, {size[1]}]"
    )
    return 0
