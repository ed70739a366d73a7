"""`streamyolox eval`: COCO mAP of a checkpoint on a dataset, through pycocotools."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="COCO mAP@[.5:.95], mAP@.5 and per-class AP of weights on a dataset")
    p.add_argument("--data", required=True, help="COCO .json, data .yaml or YOLO folder")
    p.add_argument("--split", default="val", help="split of a .yaml or YOLO folder (default: val)")
    p.add_argument("--images", default=None, help="image folder of a COCO .json")
    p.add_argument("--weights", required=True, help="checkpoint (.pth), official ONNX export, or zoo name")
    p.add_argument("--model", default=None, help="zoo name for official files (default: inferred)")
    p.add_argument("--size", type=int, nargs="+", default=None, help="input size S or H W (default: the "
                   "checkpoint's)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--conf", type=float, default=0.001, help="score threshold (COCO protocol: 0.001)")
    p.add_argument("--nms", type=float, default=0.65, help="NMS IoU threshold (official eval: 0.65)")
    p.add_argument("--output", default=None, help="write the detections here (COCO results JSON)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from streamyolox.weights import WeightsError, load_model
    from trainer.data import load_data
    from trainer.evaluate import evaluate

    try:
        data = load_data(args.data, args.split, args.images)
        if data is None:
            raise ValueError(f"{args.data}: no '{args.split}' split (try --split train)")
        loaded = load_model(args.weights, name=args.model, num_classes=len(data.class_names),
                            device=args.device, fuse=True)
        if args.size and (len(args.size) not in (1, 2) or any(s <= 0 or s % 32 for s in args.size)):
            raise ValueError(f"--size {' '.join(map(str, args.size))}: give S or H W, multiples of 32")
        size = (args.size[0], args.size[-1]) if args.size else loaded.input_size
        if tuple(loaded.class_names) != tuple(data.class_names) and loaded.metadata.get("class_names"):
            print(f"streamyolox eval: warning: checkpoint classes {list(loaded.class_names)} differ from "
                  f"the dataset's {data.class_names}; scoring by class index", file=sys.stderr)
        result = evaluate(loaded.model, data, size, torch.device(args.device), args.batch, args.workers,
                          args.output, args.conf, args.nms)
    except (ValueError, OSError, WeightsError) as exc:
        print(f"streamyolox eval: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    if args.output:
        print(f"detections: {args.output}")
    return 0
