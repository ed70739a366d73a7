"""`streamyolox detect IMAGE ...`: detections for still images, one JSON line per image."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import TextIO

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("detect", help="detect objects in images (JSON lines out)")
    p.add_argument("images", nargs="+", help="image files, directories or globs")
    p.add_argument("--model", default="yolox-nano", help="zoo name (a project checkpoint names its own)")
    p.add_argument("--weights", default=None, help="checkpoint (.pth), official ONNX export, or zoo name")
    p.add_argument("--size", type=int, default=None, help="square input size (default: the model's)")
    p.add_argument("--score-threshold", type=float, default=0.25)
    p.add_argument("--iou-threshold", type=float, default=0.45)
    p.add_argument("--class-agnostic", action="store_true", help="one NMS over all classes")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"])
    p.add_argument("--output", default="-", help="JSON lines file (default: stdout)")
    p.add_argument("--save", default=None, help="directory for annotated images")
    p.set_defaults(func=run)


def expand_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Files, directories (their images, sorted) and globs -> (paths, inputs that matched nothing)."""
    paths: list[Path] = []
    missing: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.exists():
            paths.append(p)
        elif any(ch in item for ch in "*?["):
            matched = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            paths.extend(matched) if matched else missing.append(item)
        else:
            missing.append(item)
    return paths, missing


def _default_size(args: argparse.Namespace) -> tuple[int, int] | None:
    return (args.size, args.size) if args.size else None


def run(args: argparse.Namespace) -> int:
    import cv2

    from streamyolox.inference.detector import Detector
    from streamyolox.model.spec import ModelSpec

    paths, missing = expand_inputs(args.images)
    failures = len(missing)
    for item in missing:
        print(f"streamyolox detect: {item}: no such file", file=sys.stderr)
    size = _default_size(args)
    try:  # ModelSpec checks the name, device and size itself
        spec = ModelSpec(name=args.model, weights=args.weights, device=args.device, backend=args.backend,
                         input_size=size)
        detector = Detector(spec, args.score_threshold, args.iou_threshold, args.class_agnostic)
    except (ValueError, OSError) as exc:
        print(f"streamyolox detect: {exc}", file=sys.stderr)
        return 2
    save_dir = Path(args.save) if args.save else None
    if save_dir:
        save_dir.mkdir(parents=True, exist_ok=True)
    out: TextIO = sys.stdout if args.output == "-" else open(args.output, "w", buffering=1)  # noqa: SIM115
    done = 0
    try:
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                print(f"streamyolox detect: {path}: not a readable image, skipped", file=sys.stderr)
                failures += 1
                continue
            dets = detector(image)
            record = {"image": str(path), "width": image.shape[1], "height": image.shape[0],
                      "detections": dets.to_json()}
            out.write(json.dumps(record) + "\n")
            done += 1
            if save_dir:
                from streamyolox.draw import annotate

                cv2.imwrite(str(save_dir / path.name), annotate(image.copy(), dets))
    finally:
        if out is not sys.stdout:
            out.close()
    if failures:
        print(f"streamyolox detect: {failures} input(s) failed, {done} done",
              file=sys.stderr)
    return 1 if failures else 0
