"""`streamyolox train`: train or fine-tune a YOLOX on COCO JSON or YOLO txt data (the `trainer` package)."""

from __future__ import annotations

import argparse
import logging
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train or fine-tune a YOLOX on your data (runs/NAME/best.pth)",
                              description="Train with the YOLOX recipe; under torchrun, one process per GPU.")
    p.add_argument("--data", required=True,
                   help="COCO .json (images beside it, in images/, or --images), data .yaml, or YOLO folder")
    p.add_argument("--val", default=None, help="validation data (default: the val split of --data, if any)")
    p.add_argument("--images", default=None, help="image folder of a COCO .json given to --data")
    p.add_argument("--model", default="yolox-s", help="zoo name (yolox-nano ... yolox-x) or custom")
    p.add_argument("--depth", type=float, default=None, help="depth multiplier (custom models)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (custom models)")
    p.add_argument("--weights", default=None, help="start from this checkpoint (class layers re-initialised "
                   "when the class count differs)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch", type=int, default=64, help="total batch over all processes")
    p.add_argument("--size", type=int, nargs="+", default=None, help="input size S or H W, multiples of 32 "
                   "(default: the model's test size)")
    p.add_argument("--output", default="runs/exp", help="run folder: last.pth, best.pth, metrics.csv")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="continue from OUTPUT/last.pth (or the given last.pth)")
    p.add_argument("--no-aug-epochs", type=int, default=15, help="last epochs without mosaic/mixup (+ L1)")
    p.add_argument("--warmup-epochs", type=int, default=5)
    p.add_argument("--lr-per-img", type=float, default=0.01 / 64, help="lr = this x batch (0.01/64)")
    p.add_argument("--iou-loss", choices=["iou", "giou"], default="iou", help="box loss: 1 - IoU^2 (official) "
                   "or 1 - GIoU")
    p.add_argument("--eval-interval", type=int, default=10)
    p.add_argument("--save-interval", type=int, default=1)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="seeds torch, numpy, random, loader and augmentation")
    p.add_argument("--deterministic", action="store_true", help="deterministic torch algorithms: the same "
                   "weights on a rerun on this machine")
    p.add_argument("--no-ema", action="store_true", help="no EMA of the weights")
    p.add_argument("--no-amp", action="store_true", help="full precision on GPU")
    p.add_argument("--no-mosaic", action="store_true", help="no mosaic/mixup/affine at all")
    p.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm statistics fixed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true")
    p.set_defaults(func=run)


def _size(args: argparse.Namespace, model: str) -> tuple[int, int]:
    if args.size is None:
        from streamyolox.model import ZOO, canonical_name

        key = canonical_name(model)
        return ZOO[key].test_size if key in ZOO else (640, 640)
    if len(args.size) not in (1, 2) or any(s <= 0 or s % 32 for s in args.size):
        raise ValueError(f"--size {' '.join(map(str, args.size))}: give S or H W, positive multiples of 32")
    return (args.size[0], args.size[-1])


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from streamyolox.weights import WeightsError
    from trainer.callbacks import default_callbacks
    from trainer.config import TrainConfig, aug_for_model
    from trainer.data import load_data
    from trainer.engine import Trainer

    try:
        aug = aug_for_model(args.model)
        if args.no_mosaic:
            aug.mosaic_prob = 0.0
        cfg = TrainConfig(model=args.model, depth=args.depth, width=args.width, weights=args.weights,
                          input_size=_size(args, args.model), epochs=args.epochs, batch=args.batch,
                          basic_lr_per_img=args.lr_per_img, warmup_epochs=args.warmup_epochs,
                          no_aug_epochs=min(args.no_aug_epochs, args.epochs), ema_decay=None if args.no_ema else 0.9998,
                          amp=not args.no_amp, eval_interval=args.eval_interval, save_interval=args.save_interval,
                          workers=args.workers, device=args.device, output=args.output, resume=args.resume,
                          seed=args.seed, deterministic=args.deterministic, freeze_bn=args.freeze_bn, iou_type=args.iou_loss, aug=aug)
        train = load_data(args.data, "train", args.images)
        if train is None:
            raise ValueError(f"--data {args.data}: defines no train split")
        if args.val:
            val = load_data(args.val, "val")
        elif str(args.data).endswith(".json"):
            val = None  # a single .json is the training split; pass --val for a separate one
        else:
            val = load_data(args.data, "val", args.images)
        main_process = int(os.environ.get("RANK", "0")) == 0
        callbacks = default_callbacks(not args.no_progress, not args.no_tensorboard) if main_process else []
        result = Trainer(cfg, train, val, callbacks).train()
    except (ValueError, OSError, WeightsError) as exc:
        print(f"streamyolox train: {exc}", file=sys.stderr)
        return 2
    if result is not None and main_process:
        print(result.table())
        print(f"checkpoints: {cfg.output}/best.pth, {cfg.output}/last.pth")
    return 0
