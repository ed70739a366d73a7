"""The central `Detections` type: every stage, sink and tracker consumes it.

Boxes are ``(x1, y1, x2, y2)`` in original-frame pixels, float32. The JSON form of one detection is
``{"bbox": [x1, y1, x2, y2], "score": s, "class_id": k, "class_name": "dog"}`` (+ ``"track_id"``),
which `streamyolox detect`, the `json` sink and the `zmq` sink all write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamyolox.classes import class_name


@dataclass
class FrameMeta:
    """Where a frame came from: stream id, frame index, PTS (s), capture wall-clock (s), size."""

    stream: str = "0"
    frame: int = 0
    pts: float | None = None
    time: float = 0.0
    width: int = 0
    height: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "frame": self.frame,
            "pts": self.pts,
            "time": self.time,
            "width": self.width,
            "height": self.height,
        }


@dataclass
class Detections:
    """Detections of one frame.

    Args:
        xyxy (ndarray[N, 4] float32): boxes in ``(x1, y1, x2, y2)`` original-frame pixels.
        scores (ndarray[N] float32): objectness x class probability.
        class_ids (ndarray[N] int64): class indices.
        track_ids (ndarray[N] int64 | None): tracker ids, when a tracker ran; -1 for a detection that is
            not part of a confirmed track (JSON: ``"track_id": null``).
        class_names: the label table that `class_ids` index (COCO when None).
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray | None = None
    class_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        n = len(self.xyxy)
        if len(self.scores) != n or len(self.class_ids) != n:
            raise ValueError(
                f"Detections: xyxy has {n} rows, scores {len(self.scores)}, class_ids {len(self.class_ids)}"
            )
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
            if len(self.track_ids) != n:
                raise ValueError(f"Detections: track_ids has {len(self.track_ids)} rows, expected {n}")

    @classmethod
    def empty(cls, class_names: Sequence[str] | None = None) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   class_names=class_names)

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select by boolean mask, index array or slice; always returns `Detections`."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Detections(
            self.xyxy[index],
            self.scores[index],
            self.class_ids[index],
            None if self.track_ids is None else self.track_ids[index],
            self.class_names,
        )

    def names(self) -> list[str]:
        """Class name of each detection."""
        table = tuple(self.class_names) if self.class_names is not None else None
        if table is None:
            from streamyolox.classes import COCO_CLASSES

            table = COCO_CLASSES
        return [class_name(table, int(k)) for k in self.class_ids]

    def to_json(self, ndigits: int = 2) -> list[dict[str, Any]]:
        """One dict per detection, in the schema `streamyolox detect` writes."""
        out = []
        for i, name in enumerate(self.names()):
            item: dict[str, Any] = {
                "bbox": [round(float(v), ndigits) for v in self.xyxy[i]],
                "score": round(float(self.scores[i]), 5),
                "class_id": int(self.class_ids[i]),
                "class_name": name,
            }
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i]) if self.track_ids[i] >= 0 else None
            out.append(item)
        return out

    @classmethod
    def from_json(cls, items: Sequence[dict[str, Any]], class_names: Sequence[str] | None = None) -> Detections:
        """Inverse of `to_json`."""
        if not items:
            return cls.empty(class_names)
        tracks = ([-1 if d["track_id"] is None else d["track_id"] for d in items]
                  if all("track_id" in d for d in items) else None)
        return cls(
            np.array([d["bbox"] for d in items], np.float32),
            np.array([d["score"] for d in items], np.float32),
            np.array([d["class_id"] for d in items], np.int64),
            None if tracks is None else np.array(tracks, np.int64),
            class_names,
        )

    @classmethod
    def merge(cls, parts: Sequence[Detections]) -> Detections:
        """Concatenate several `Detections` (the first one's class table is kept)."""
        if not parts:
            return cls.empty()
        has_tracks = all(p.track_ids is not None for p in parts)
        return cls(
            np.concatenate([p.xyxy for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.class_ids for p in parts]),
            np.concatenate([p.track_ids for p in parts]) if has_tracks else None,  # type: ignore[misc]
            parts[0].class_names,
        )


def frame_record(meta: FrameMeta, detections: Detections | None) -> dict[str, Any]:
    """The per-frame JSON record the `json` and `zmq` sinks write:
    ``{"stream", "frame", "pts", "time", "width", "height", "detections": [...]}``."""
    record = meta.to_json()
    record["detections"] = [] if detections is None else detections.to_json()
    return record
