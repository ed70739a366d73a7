"""The official YOLOX demo's video loop (`tools/demo.py video`), re-implemented from its documented behaviour.

This is the baseline a user would otherwise run: `python tools/demo.py video -n yolox-nano -c yolox_nano.pth
--path VIDEO --save_result --device cpu`. Per frame, as the official `Predictor` and `imageflow_demo` do:

1. `cv2.VideoCapture.read()` (BGR uint8).
2. `ValTransform(legacy=False)`: the official `preproc` letterbox (INTER_LINEAR resize to the top-left of a
   114-filled canvas, HWC->CHW, float32 0-255), then `torch.from_numpy(...).unsqueeze(0).float()`.
3. `model(img)` under `torch.no_grad()`: the eval forward with decoding in the head, our
   `build_model("yolox-nano")` with the same official checkpoint loaded `strict`, NOT fused (the demo fuses
   only with `--fuse`), torch's default thread count.
4. The official `postprocess` in torch (cxcywh->xyxy, best class, `obj * cls >= conf`, detections
   `(x1, y1, x2, y2, obj, cls, class)`), `class_agnostic=True` as the demo passes it, with the demo's
   defaults `--conf 0.3 --nms 0.3`. torchvision is not installed here, so the NMS call is
   `streamyolox.ops.nms` (same greedy algorithm and result as `torchvision.ops.nms`) on the same boxes.
5. `Predictor.visual`: boxes divided by the ratio, score `obj * cls`, and `vis()` drawing: a 2-px box per
   detection above `conf`, a filled label background and `NAME:xx.x%` text (FONT_HERSHEY_SIMPLEX 0.4).
   Colours come from our own fixed palette (the official table's values do not change the cost).
6. `--save_result` (the documented way to keep results): `cv2.VideoWriter(..., 'mp4v', fps, (w, h))` and
   `write(frame)`. The official loop also calls `cv2.waitKey(1)`; headless OpenCV has no GUI, so it is
   left out (about 1 ms per frame in a GUI build, i.e. this baseline is if anything slightly fast).
7. A `logger.info("Infer time: ...")` line per frame, as the official code logs (to stderr here).

Timed: the frame loop only (first read to last write), not the model build/load, like a user watching
frames go by. Writes a `streamyolox bench` JSON document (suite `pipeline`, case `official-demo`).

    python benchmarks/official_demo_baseline.py --path ../shared/media/street_pan_720p.mp4 --json demo.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from streamyolox.bench.harness import Result, RssSampler
from streamyolox.bench.machine import machine_info
from streamyolox.bench.report import print_results, to_document, write_json
from streamyolox.classes import COCO_CLASSES
from streamyolox.model import build_model
from streamyolox.ops import nms

log = logging.getLogger("official-demo")
REPO = Path(__file__).resolve().parents[1]


def val_transform(img: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Official `preproc` (legacy off): img [H, W, 3] uint8 BGR -> ([3, h, w] float32 0-255, ratio r)."""
    padded = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    new_w, new_h = int(img.shape[1] * r), int(img.shape[0] * r)
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    padded[:new_h, :new_w] = resized
    return np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32), r


def postprocess(prediction: torch.Tensor, num_classes: int, conf_thre: float, nms_thre: float) -> list:
    """Official `postprocess(..., class_agnostic=True)`: prediction [B, N, 5 + C] decoded (cx, cy, w, h)
    -> per image None or [K, 7] (x1, y1, x2, y2, obj, cls_conf, cls) in input pixels."""
    corner = prediction.new(prediction.shape)
    corner[:, :, 0] = prediction[:, :, 0] - prediction[:, :, 2] / 2
    corner[:, :, 1] = prediction[:, :, 1] - prediction[:, :, 3] / 2
    corner[:, :, 2] = prediction[:, :, 0] + prediction[:, :, 2] / 2
    corner[:, :, 3] = prediction[:, :, 1] + prediction[:, :, 3] / 2
    prediction[:, :, :4] = corner[:, :, :4]
    output: list = [None] * len(prediction)
    for i, image_pred in enumerate(prediction):
        if not image_pred.size(0):
            continue
        class_conf, class_pred = torch.max(image_pred[:, 5 : 5 + num_classes], 1, keepdim=True)
        conf_mask = (image_pred[:, 4] * class_conf.squeeze() >= conf_thre).squeeze()
        detections = torch.cat((image_pred[:, :5], class_conf, class_pred.float()), 1)[conf_mask]
        if not detections.size(0):
            continue
        # torchvision.ops.nms(boxes, obj * cls, thr) -> our NMS on the same arrays (torchvision absent here)
        keep = nms(detections[:, :4].numpy(), (detections[:, 4] * detections[:, 5]).numpy(), nms_thre)
        output[i] = detections[torch.from_numpy(keep)]
    return output


def palette(n: int = 80) -> np.ndarray:
    """[n, 3] float colours in 0..1, evenly spaced hues (our own table; the cost is the same)."""
    hsv = np.stack([np.linspace(0, 179, n, endpoint=False), np.full(n, 200), np.full(n, 230)], -1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0].astype(np.float32) / 255


def vis(img: np.ndarray, boxes: torch.Tensor, scores: torch.Tensor, cls_ids: torch.Tensor, conf: float,
        class_names: tuple[str, ...], colors: np.ndarray) -> np.ndarray:
    """Official `vis()` behaviour: box, filled label background and `NAME:xx.x%` per detection >= conf."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    for i in range(len(boxes)):
        cls_id, score = int(cls_ids[i]), float(scores[i])
        if score < conf:
            continue
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        color = (colors[cls_id] * 255).astype(np.uint8).tolist()
        text = f"{class_names[cls_id]}:{score * 100:.1f}%"
        txt_color = (0, 0, 0) if np.mean(colors[cls_id]) > 0.5 else (255, 255, 255)
        txt_size = cv2.getTextSize(text, font, 0.4, 1)[0]
        cv2.rectangle(img, (x0, y0), (x1, y1), color, 2)
        bk = (colors[cls_id] * 255 * 0.7).astype(np.uint8).tolist()
        cv2.rectangle(img, (x0, y0 + 1), (x0 + txt_size[0] + 1, y0 + int(1.5 * txt_size[1])), bk, -1)
        cv2.putText(img, text, (x0, y0 + txt_size[1]), font, 0.4, txt_color, thickness=1)
    return img


def load_official(weights: Path) -> torch.nn.Module:
    """`exp.get_model()` + `model.eval()` + `load_state_dict(ckpt["model"])` (strict), no fuse."""
    model = build_model("yolox-nano").eval()
    ckpt = torch.load(weights, map_location="cpu")
    model.load_state_dict(ckpt["model"])
    return model


def run_demo(model: torch.nn.Module, path: Path, save_path: Path, test_size: tuple[int, int], conf: float,
             nms_thre: float, max_frames: int | None) -> tuple[int, float]:
    """The `imageflow_demo` loop with `--save_result`; returns (frames, seconds of the loop)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"official_demo_baseline: cannot open video {path}")
    width, height = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    writer = cv2.VideoWriter(str(save_path), cv2.VideoWriter_fourcc(*"mp4v"), cap.get(cv2.CAP_PROP_FPS),
                             (int(width), int(height)))
    colors, frames = palette(), 0
    t_start = time.perf_counter()
    while max_frames is None or frames < max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        ratio = min(test_size[0] / frame.shape[0], test_size[1] / frame.shape[1])
        img, _ = val_transform(frame, test_size)
        x = torch.from_numpy(img).unsqueeze(0).float()
        with torch.no_grad():
            t0 = time.time()
            outputs = postprocess(model(x), 80, conf, nms_thre)
            log.info("Infer time: %.4fs", time.time() - t0)
        out = outputs[0]
        if out is not None:
            bboxes = out[:, 0:4] / ratio
            frame = vis(frame, bboxes, out[:, 4] * out[:, 5], out[:, 6], conf, COCO_CLASSES, colors)
        writer.write(frame)
        frames += 1
    elapsed = time.perf_counter() - t_start
    cap.release()
    writer.release()
    return frames, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = REPO.parent / "shared"
    parser.add_argument("--path", type=Path, default=shared / "media" / "street_pan_720p.mp4")
    parser.add_argument("-c", "--ckpt", type=Path, default=shared / "weights" / "yolox_nano.pth")
    parser.add_argument("--tsize", type=int, default=416)
    parser.add_argument("--conf", type=float, default=0.3)
    parser.add_argument("--nms", type=float, default=0.3)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--save-dir", type=Path, default=None, help="keep the annotated video here")
    parser.add_argument("--json", type=Path, help="write a streamyolox bench JSON document")
    args = parser.parse_args(argv)
    for p, what in ((args.path, "video"), (args.ckpt, "checkpoint")):
        if not p.exists():
            raise SystemExit(f"official_demo_baseline: {what} {p} not found")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s | %(message)s")
    model = load_official(args.ckpt)
    with tempfile.TemporaryDirectory(prefix="yolox-demo-") as tmp, RssSampler() as rss:
        save_dir = args.save_dir or Path(tmp)
        save_dir.mkdir(parents=True, exist_ok=True)
        frames, elapsed = run_demo(model, args.path, save_dir / args.path.name, (args.tsize, args.tsize),
                                   args.conf, args.nms, args.max_frames)
    result = Result("pipeline", "official-demo", fps=frames / elapsed, peak_rss_mb=rss.peak_total_mb,
                    params={"video": str(args.path), "input_size": args.tsize, "fuse": False,
                            "save_result": True, "torch_threads": torch.get_num_threads()},
                    extra={"frames": frames, "elapsed_s": elapsed})
    print_results([result])
    if args.json:
        write_json(args.json, to_document([result], machine_info(), {k: str(v) for k, v in vars(args).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
