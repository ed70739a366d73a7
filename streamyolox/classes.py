"""Class-name tables. COCO_CLASSES is the 80-class list YOLOX's COCO checkpoints were trained on.

`resolve_class_names` decides, once per model when it is loaded, what its class ids are called: the names
the weights record; COCO's for an 80-class model that records none (the official checkpoints); otherwise
``class_0 .. class_{n-1}`` with one warning, never COCO names for a model trained on something else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger("streamyolox.classes")
_warned: set[tuple[str, int]] = set()  # (source, class count) already warned about in this process

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


def class_name(names: tuple[str, ...] | list[str] | None, class_id: int) -> str:
    """Name of `class_id` in `names`, or its number as text when the table has no such entry."""
    if names is not None and 0 <= class_id < len(names):
        return names[class_id]
    return str(class_id)


def generic_class_names(num_classes: int) -> tuple[str, ...]:
    """``class_0 .. class_{n-1}``: names for a model whose weights do not say what its classes are."""
    return tuple(f"class_{i}" for i in range(num_classes))


def resolve_class_names(names: Sequence[str] | None, num_classes: int, source: str) -> tuple[str, ...]:
    """The label table of a `num_classes`-class model whose weights (`source`, for the message) record `names`.

    Recorded names of the right count win; no names and 80 classes means COCO (official checkpoints record
    none); anything else gets generic names and one warning per model and process.
    """
    if names and len(names) == num_classes:
        return tuple(str(n) for n in names)
    if not names and num_classes == len(COCO_CLASSES):
        return COCO_CLASSES
    why = f"records {len(names)} class names" if names else "records no class names"
    if (source, num_classes) not in _warned:
        _warned.add((source, num_classes))
        log.warning("%s %s for its %d classes; labelling detections class_0..class_%d",
                    source, why, num_classes, num_classes - 1)
    return generic_class_names(num_classes)
