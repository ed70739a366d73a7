"""The zoo table: official variants by name. Torch-free, so validation and stage processes can read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ZooEntry:
    """One official variant: multipliers, default test size (h, w), depthwise convs, and activation."""

    depth: float
    width: float
    test_size: tuple[int, int]
    depthwise: bool = False
    act: str = "silu"
    darknet: bool = False


ZOO: dict[str, ZooEntry] = {
    "yolox-nano": ZooEntry(0.33, 0.25, (416, 416), depthwise=True),
    "yolox-tiny": ZooEntry(0.33, 0.375, (416, 416)),
    "yolox-s": ZooEntry(0.33, 0.50, (640, 640)),
    "yolox-m": ZooEntry(0.67, 0.75, (640, 640)),
    "yolox-l": ZooEntry(1.0, 1.0, (640, 640)),
    "yolox-x": ZooEntry(1.33, 1.25, (640, 640)),
    "yolox-darknet53": ZooEntry(1.0, 1.0, (640, 640), act="lrelu", darknet=True),
}


def canonical_name(name: str) -> str:
    """`yolox-s`, `yolox_s`, `YOLOX-S`, `s` -> the zoo key (`custom` stays `custom`); ValueError otherwise."""
    key = name.strip().lower().replace("_", "-")
    if key in ("custom", "yolox-custom"):
        return "custom"
    if not key.startswith("yolox-"):
        key = f"yolox-{key}"
    if key in ZOO:
        return key
    raise ValueError(f"unknown model {name!r}: expected one of {', '.join(ZOO)} (or custom depth/width)")
