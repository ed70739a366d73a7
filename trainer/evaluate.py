"""COCO evaluation: run a model over a dataset, write COCO results, score with pycocotools."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from streamyolox.ops import letterbox_ref, postprocess
from trainer.data.records import DetectionData
from trainer.data.sizes import read_image


@dataclass
class EvalResult:
    """COCO metrics: ``map`` = AP@[.5:.95], ``map50`` = AP@.5, the 12 COCOeval stats, and AP@[.5:.95] per
    class name (classes with ground truth in the evaluated images)."""

    map: float
    map50: float
    stats: list[float]
    per_class: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"mAP@[.5:.95] {self.map:.4f}   mAP@.5 {self.map50:.4f}"]
        lines += [f"  {name:<24} AP {ap:.4f}" for name, ap in self.per_class.items()]
        return "\n".join(lines)


class _EvalImages(torch.utils.data.Dataset):
    """Images letterboxed as the pipeline does (`streamyolox.ops.letterbox_ref`)."""

    def __init__(self, data: DetectionData, size: tuple[int, int]) -> None:
        self.records, self.size = data.records, size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, float]:
        tensor, ratio = letterbox_ref(read_image(self.records[index].path), self.size)
        return tensor, index, ratio


def _collate(batch: list[tuple[np.ndarray, int, float]]) -> tuple[torch.Tensor, list[int], list[float]]:
    return torch.from_numpy(np.stack([b[0] for b in batch])), [b[1] for b in batch], [b[2] for b in batch]


@torch.no_grad()
def predict(model: nn.Module, data: DetectionData, input_size: tuple[int, int], device: torch.device,
            batch: int = 8, workers: int = 0, conf: float = 0.001, nms: float = 0.65) -> list[dict[str, Any]]:
    """Detections of `model` on every image of `data` in COCO results form
    (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] original pixels, ``score``)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(_EvalImages(data, input_size), batch_size=batch, num_workers=workers,
                        collate_fn=_collate)
    results: list[dict[str, Any]] = []
    for images, indices, ratios in loader:
        decoded = model(images.to(device), decode=True).float().cpu().numpy()
        for pred, index, ratio in zip(decoded, indices, ratios):
            dets = postprocess(pred, ratio, conf, nms)
            image_id = data.records[index].image_id
            for box, score, cls in zip(dets.xyxy.tolist(), dets.scores.tolist(), dets.class_ids.tolist()):
                results.append({"image_id": image_id, "category_id": int(data.category_ids[cls]),
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                                "score": float(score)})
    model.train(was_training)
    return results


def coco_score(gt: dict[str, Any], results: Sequence[dict[str, Any]], image_ids: Sequence[int],
               class_names: Sequence[str], category_ids: Sequence[int]) -> EvalResult:
    """Score `results` against the COCO ground truth dict with pycocotools, over `image_ids` only."""
    from pycocotools.coco import COCO  # imported here: training itself must not need pycocotools
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        if not results:
            present = {a["category_id"] for a in gt.get("annotations", []) if a.get("image_id") in set(image_ids)}
            names = {class_names[i]: 0.0 for i, c in enumerate(category_ids) if c in present}
            return EvalResult(0.0, 0.0, [0.0] * 12, names)
        coco_dt = coco_gt.loadRes(list(results))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = list(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    precision = ev.eval["precision"]  # [T, R, K, A, M]; K in ev.params.catIds order
    for k, cat in enumerate(ev.params.catIds):
        if cat in category_ids:
            p = precision[:, :, k, 0, -1]
            valid = p[p > -1]
            if valid.size:  # -1 everywhere: no ground truth of this class in these images
                per_class[class_names[list(category_ids).index(cat)]] = float(valid.mean())
    stats = [float(s) for s in ev.stats]
    return EvalResult(max(stats[0], 0.0), max(stats[1], 0.0), stats, per_class)


def evaluate(model: nn.Module, data: DetectionData, input_size: tuple[int, int], device: torch.device,
             batch: int = 8, workers: int = 0, output: str | Path | None = None,
             conf: float = 0.001, nms: float = 0.65) -> EvalResult:
    """Predict over `data`, optionally write the results JSON to `output`, and score them."""
    results = predict(model, data, input_size, device, batch, workers, conf, nms)
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(results))
    ids = [r.image_id for r in data.records]
    return coco_score(data.gt_dict(), results, ids, data.class_names, data.category_ids)
