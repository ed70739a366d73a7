"""Mosaic, mixup, affine and flip keep every box on its object: each object is also rendered alone as a
mask, the same seeded pipeline runs on the masks, and the box must match the mask's bounding box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.trainer.synthetic import draw_shape, make_image
from trainer.data.dataset import TrainDataset
from trainer.data.records import ImageRecord
from trainer.data.transforms import AugConfig, warp_boxes


def _scene(count: int = 6, seed: int = 3, only_rectangles: bool = False):
    """Records whose classes are unique object ids, the images, and each object's shape and box."""
    rng = np.random.default_rng(seed)
    records, images, objects = [], {}, {}
    for i in range(count):
        sample = make_image(rng, 120 + 20 * (i % 3), 160, max_objects=3, size_range=(24, 56))
        for j, shape in enumerate(sample.classes):  # the label is the drawn shape's exact pixel extent
            alone = np.zeros(sample.image.shape[:2], np.uint8)
            draw_shape(alone, 1 if only_rectangles else int(shape),
                       tuple(int(v) for v in sample.boxes[j] - [0, 0, 1, 1]), colour=(255,))
            ys, xs = np.nonzero(alone)
            sample.boxes[j] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        ids = np.arange(len(objects), len(objects) + len(sample.boxes))
        for k, box, shape in zip(ids, sample.boxes, sample.classes):
            objects[int(k)] = (i, 1 if only_rectangles else int(shape), box)
        path = Path(f"img{i}.png")
        images[path] = sample.image
        records.append(ImageRecord(path, 160, sample.image.shape[0], sample.boxes, ids, i))
    if only_rectangles:  # redraw every object as a filled rectangle
        for i, _, box in objects.values():
            draw_shape(images[Path(f"img{i}.png")], 1, tuple(int(v) for v in box - [0, 0, 1, 1]))
    return records, images, objects


def _mask_reader(records, objects, k: int):
    """Images that are grey 114 everywhere except object k, drawn with only its blue channel raised."""
    def read(path: Path) -> np.ndarray:
        rec = next(r for r in records if r.path == path)
        img = np.full((rec.height, rec.width, 3), 114, np.uint8)
        i, shape, box = objects[k]
        if path == Path(f"img{i}.png"):
            draw_shape(img, shape, tuple(int(v) for v in box - [0, 0, 1, 1]), colour=(255, 114, 114))
        return img
    return read


def _check(cfg: AugConfig, only_rectangles: bool, tol: float, inside_only: bool = False) -> int:
    """Compare boxes with their objects' pixels; `inside_only` skips boxes clipped at the border (a
    rotated box cut by the border encloses corners that are no longer visible)."""
    records, images, objects = _scene(only_rectangles=only_rectangles)
    checked = 0
    for index in range(len(records)):
        for seed in range(4):
            ds = TrainDataset(records, (128, 128), cfg, seed=seed, reader=images.__getitem__)
            _, labels = ds[index]
            for k in np.unique(labels[:, 0]).astype(int):
                rows = labels[labels[:, 0] == k]
                if len(rows) != 1:
                    continue  # the same image drawn twice into one mosaic
                masked = TrainDataset(records, (128, 128), cfg, seed=seed, reader=_mask_reader(records, objects, k))
                mask_img, mask_labels = masked[index]
                np.testing.assert_array_equal(mask_labels, labels)  # same random draws
                cx, cy, w, h = rows[0, 1:]
                box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                if inside_only and (box.min() < 0.5 or box.max() > 127.5):
                    continue
                # the object's pixels near its box (a mosaic may show the same image twice)
                on = (mask_img[0] - mask_img[1]) > 10  # any coverage: thin tips survive interpolation
                near = np.zeros_like(on)
                x1, y1, x2, y2 = (box + np.array([-3, -3, 3, 3]) * tol).round().astype(int).clip(0)
                near[y1:y2, x1:x2] = on[y1:y2, x1:x2]
                ys, xs = np.nonzero(near)
                assert len(xs), f"object {k} has a box but no pixels"
                seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                assert np.abs(box - seen).max() <= tol, (k, box, seen)
                checked += 1
    return checked


def test_mosaic_mixup_flip_boxes_follow_objects() -> None:
    cfg = AugConfig(degrees=0.0, shear=0.0, mosaic_scale=(0.5, 1.5), hsv_prob=0.0, min_area_ratio=0.25)
    assert _check(cfg, only_rectangles=False, tol=3.0) >= 30


def test_rotation_and_shear_move_box_corners_exactly() -> None:
    cfg = AugConfig(degrees=25.0, shear=8.0, mosaic_scale=(0.6, 1.4), enable_mixup=True, hsv_prob=0.0,
                    min_area_ratio=0.25)
    assert _check(cfg, only_rectangles=True, tol=2.0, inside_only=True) >= 30


def test_warp_boxes_is_the_enclosing_box_of_the_corners() -> None:
    theta = np.deg2rad(30)
    m = np.array([[np.cos(theta), -np.sin(theta), 5.0], [np.sin(theta), np.cos(theta), -2.0]])
    box = np.array([[0.0, 0.0, 4.0, 2.0]])
    corners = np.array([[0, 0], [4, 0], [4, 2], [0, 2]]) @ m[:, :2].T + m[:, 2]
    expected = np.r_[corners.min(0), corners.max(0)]
    np.testing.assert_allclose(warp_boxes(box, m)[0], expected, atol=1e-5)


@pytest.mark.parametrize("strong", [True, False])
def test_no_aug_epochs_turn_off_mosaic(strong: bool) -> None:
    records, images, _ = _scene(count=3)
    ds = TrainDataset(records, (128, 128), AugConfig(flip_prob=0.0, hsv_prob=0.0), reader=images.__getitem__)
    ds.strong = strong
    img, labels = ds[0]
    rec = records[0]
    ratio = min(128 / rec.height, 128 / rec.width)
    plain = len(labels) == len(rec.boxes) and np.allclose(
        labels[:, 1:3], (rec.boxes[:, :2] + rec.boxes[:, 2:]) / 2 * ratio, atol=1e-3)
    assert plain != strong
    if not strong:  # letterbox top-left, pad 114
        assert (img[:, int(rec.height * ratio) + 1:, :] == 114).all()
