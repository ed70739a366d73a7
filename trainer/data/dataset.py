"""The training dataset (mosaic / mixup / affine / HSV / flip) and its loader helpers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from trainer.data.mosaic import Sample, mixup, mosaic4
from trainer.data.records import ImageRecord
from trainer.data.sizes import read_image
from trainer.data.transforms import AugConfig, augment_hsv, hflip, letterbox, random_affine, to_tensor_layout

Reader = Callable[[Path], np.ndarray]


class TrainDataset(Dataset):
    """Augmented training samples at a fixed input size (h, w).

    Item: ``(image float32 [3, h, w] BGR 0-255, labels float32 [N, 5] as (class, cx, cy, w, h) pixels)``.
    ``strong`` switches mosaic, mixup and the random affine (off for the last no-aug epochs, as the
    official ``close_mosaic``); HSV jitter and flips stay, as official. Randomness comes from ``rng``,
    reseeded per worker by `worker_init`.
    """

    def __init__(self, records: Sequence[ImageRecord], input_size: tuple[int, int], aug: AugConfig,
                 seed: int = 0, reader: Reader = read_image) -> None:
        self.records = list(records)
        self.input_size = input_size
        self.aug = aug
        self.strong = True
        self.reader = reader
        self.rng = np.random.default_rng(seed)
        self._with_boxes = [i for i, r in enumerate(self.records) if len(r.boxes)]

    def __len__(self) -> int:
        return len(self.records)

    def seed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def load(self, index: int) -> Sample:
        """Image `index` resized to fit the input size, with its boxes scaled to match."""
        rec = self.records[index]
        img = self.reader(rec.path)
        scale = min(self.input_size[0] / img.shape[0], self.input_size[1] / img.shape[1])
        sx, sy = img.shape[1] / rec.width, img.shape[0] / rec.height  # annotation size vs decoded size
        img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)),
                         interpolation=cv2.INTER_LINEAR)
        boxes = rec.boxes * np.array([sx, sy, sx, sy], np.float32) * scale
        return img, boxes.astype(np.float32), rec.classes.copy()

    def sample(self, index: int) -> Sample:
        """The augmented sample before HSV/flip: a mosaic (+ affine, maybe mixup) or one letterboxed image."""
        h, w = self.input_size
        if self.strong and self.rng.uniform() < self.aug.mosaic_prob:
            picks = [index, *self.rng.integers(0, len(self.records), 3).tolist()]
            centre = (int(self.rng.uniform(0.5 * w, 1.5 * w)), int(self.rng.uniform(0.5 * h, 1.5 * h)))
            canvas, boxes, classes = mosaic4([self.load(i) for i in picks], centre, (h, w))
            out = random_affine(canvas, boxes, classes, self.rng, (h, w), self.aug, centre=centre)
            if self.aug.enable_mixup and self._with_boxes and self.rng.uniform() < self.aug.mixup_prob:
                other = self._with_boxes[int(self.rng.integers(0, len(self._with_boxes)))]
                out = mixup(out, self.load(other), self.rng, self.aug)
            return out
        img, boxes, classes = self.load(index)
        padded, _ = letterbox(img, (h, w))
        return padded, boxes, classes

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img, boxes, classes = self.sample(index)
        if self.rng.uniform() < self.aug.hsv_prob:
            img = augment_hsv(img, self.rng, self.aug.hsv_gains)
        if self.rng.uniform() < self.aug.flip_prob:
            img, boxes = hflip(img, boxes)
        return to_tensor_layout(img), boxes_to_labels(boxes, classes)


def boxes_to_labels(boxes: np.ndarray, classes: np.ndarray, min_side: float = 1.0) -> np.ndarray:
    """``(x1, y1, x2, y2)`` [N, 4] + classes [N] -> float32 [M, 5] ``(class, cx, cy, w, h)``, dropping
    boxes whose shorter side is not above `min_side` (official ``TrainTransform``)."""
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = wh.min(axis=1) > min_side if len(boxes) else np.zeros(0, bool)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    labels = np.concatenate([classes[:, None].astype(np.float32), centre, wh], axis=1)
    return labels[keep].astype(np.float32).reshape(-1, 5)


def collate_train(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Stack images [B, 3, h, w]; keep the labels as a list of [N_i, 5] tensors."""
    images = torch.from_numpy(np.stack([b[0] for b in batch]))
    return images, [torch.from_numpy(b[1]) for b in batch]


def worker_init(worker_id: int) -> None:
    """Give each loader worker (and each epoch's workers) its own augmentation stream."""
    info = torch.utils.data.get_worker_info()
    if info is not None and isinstance(info.dataset, TrainDataset):
        info.dataset.seed(info.seed % 2**32)
