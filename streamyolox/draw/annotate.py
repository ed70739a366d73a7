"""`annotate(frame, detections)`: the one drawing function every sink that draws uses;
`annotate_counts(frame, counts)` adds the `count` stage's lines, zones and running totals."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from streamyolox.analytics.events import Counts
from streamyolox.detections import Detections
from streamyolox.draw.palette import class_color, text_color

_FONT = cv2.FONT_HERSHEY_SIMPLEX
LINE_COLOR = (0, 215, 255)  # BGR amber: counting lines, apart from every class colour's saturation steps
ZONE_COLOR = (255, 191, 0)  # BGR sky blue: zone outlines


@dataclass(frozen=True)
class DrawStyle:
    """Line and text sizes for a frame size; `for_frame` scales them so labels stay legible at any size."""

    thickness: int
    font_scale: float
    font_thickness: int

    @classmethod
    def for_frame(cls, height: int, width: int) -> DrawStyle:
        short = min(height, width)
        font_scale = max(0.4, short / 1200.0)  # 0.6 at 720p, 0.9 at 1080p
        return cls(thickness=max(1, round(short / 360.0)), font_scale=font_scale,
                   font_thickness=max(1, round(font_scale * 1.7)))


def label_text(detections: Detections, index: int, names: list[str] | None = None) -> str:
    """`"#7 person 0.87"` (track id first when present; none for -1, not a confirmed track)."""
    name = (names or detections.names())[index]
    text = f"{name} {float(detections.scores[index]):.2f}"
    if detections.track_ids is not None and detections.track_ids[index] >= 0:
        text = f"#{int(detections.track_ids[index])} {text}"
    return text


def label_box(text: str, style: DrawStyle) -> tuple[tuple[int, int], int, int]:
    """((width, height) of the label box of `text`, its padding, the text's baseline) in pixels."""
    (tw, th), base = cv2.getTextSize(text, _FONT, style.font_scale, style.font_thickness)
    pad = max(2, style.thickness)
    return (tw + 2 * pad, th + base + 2 * pad), pad, base


def put_label(frame: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int],
              style: DrawStyle) -> None:
    """Draw `text` on a filled `color` box whose bottom-left corner is `origin` (kept inside the frame).

    Args:
        frame (ndarray[H, W, 3] uint8): BGR image, drawn in place.
        origin: (x, y) pixel where the label box's bottom-left corner goes, before clamping.
    """
    h, w = frame.shape[:2]
    (box_w, box_h), pad, base = label_box(text, style)
    x = int(min(max(origin[0], 0), max(w - box_w, 0)))
    y = int(min(max(origin[1], box_h), h))
    cv2.rectangle(frame, (x, y - box_h), (x + box_w, y), color, cv2.FILLED)
    cv2.putText(frame, text, (x + pad, y - pad - base), _FONT, style.font_scale, text_color(color),
                style.font_thickness, cv2.LINE_AA)


def annotate(frame: np.ndarray, detections: Detections | None, *, copy: bool = True,
             style: DrawStyle | None = None, labels: bool = True) -> np.ndarray:
    """Draw boxes with `class score` labels (and track ids) on a frame, one stable colour per class.

    Args:
        frame (ndarray[H, W, 3] uint8): BGR image.
        detections: boxes in (x1, y1, x2, y2) pixels of `frame`; non-finite boxes are skipped.
        copy: draw on a copy (default) rather than in place.
        style: sizes; default scales with the frame size.
        labels: draw the label boxes (False: rectangles only).

    Returns:
        ndarray[H, W, 3] uint8: the annotated frame (`frame` itself when copy=False).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"annotate: expected a BGR uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")
    out = frame.copy() if copy else frame
    if detections is None or len(detections) == 0:
        return out
    h, w = out.shape[:2]
    style = style or DrawStyle.for_frame(h, w)
    names = detections.names()
    boxes = np.clip(np.nan_to_num(detections.xyxy, nan=-1.0), -1, max(w, h) + 1)
    finite = np.isfinite(detections.xyxy).all(axis=1)
    # Draw low scores first so the most confident boxes and labels end up on top.
    for i in np.argsort(detections.scores, kind="stable"):
        if not finite[i]:
            continue
        x1, y1, x2, y2 = (round(float(v)) for v in boxes[i])
        color = class_color(int(detections.class_ids[i]))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, style.thickness, cv2.LINE_8)  # crisp: axis-aligned
        if labels:
            put_label(out, label_text(detections, int(i), names), (x1 - style.thickness // 2, y1), color,
                      style)
    return out


def annotate_counts(frame: np.ndarray, counts: Counts | None, *, copy: bool = True,
                    style: DrawStyle | None = None) -> np.ndarray:
    """Draw counting lines (an arrow towards the `in` side, `door in 3 out 1`) and zones (outline,
    `bay 2: person 2`) with their running totals.

    Args:
        frame (ndarray[H, W, 3] uint8): BGR image.
        counts: a stream's `Counts` (geometry in pixels of `frame`); None draws nothing.

    Returns:
        ndarray[H, W, 3] uint8: the annotated frame (`frame` itself when copy=False).
    """
    out = frame.copy() if copy else frame
    if counts is None:
        return out
    style = style or DrawStyle.for_frame(*out.shape[:2])
    for name, zone in counts.zones.items():
        pts = np.round(np.asarray(zone.polygon, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, ZONE_COLOR, style.thickness, cv2.LINE_AA)
        inside = ", ".join(f"{k} {v}" for k, v in sorted(zone.occupancy.items()))
        label = f"{name} {sum(zone.occupancy.values())}" + (f": {inside}" if inside else "")
        top = pts[:, 0, :][np.argmin(pts[:, 0, 1])]
        put_label(out, label, (int(top[0]), int(top[1])), ZONE_COLOR, style)
    for name, line in counts.lines.items():
        (ax, ay), (bx, by) = line.points
        a, b = (round(ax), round(ay)), (round(bx), round(by))
        cv2.line(out, a, b, LINE_COLOR, style.thickness + 1, cv2.LINE_AA)
        # `in` goes from the side where (B - A) x (P - A) > 0 to the other: along (dy, -dx)
        length = max(float(np.hypot(bx - ax, by - ay)), 1e-9)
        mid = ((ax + bx) / 2, (ay + by) / 2)
        nx, ny = (by - ay) / length, -(bx - ax) / length
        reach = 12 * style.thickness
        tip = (round(mid[0] + nx * reach), round(mid[1] + ny * reach))
        cv2.arrowedLine(out, (round(mid[0]), round(mid[1])), tip, LINE_COLOR, style.thickness, cv2.LINE_AA,
                        tipLength=0.4)
        text = f"{name} in {line.count_in} out {line.count_out}"
        (box_w, box_h), _, _ = label_box(text, style)
        # the label beyond the arrow's tip, on the `in` side, clear of the line
        x0 = tip[0] - box_w if nx < -0.5 else tip[0] if nx > 0.5 else tip[0] - box_w // 2
        y0 = tip[1] + box_h if ny > 0.5 else tip[1] if ny < -0.5 else tip[1] + box_h // 2
        put_label(out, text, (x0, y0), LINE_COLOR, style)
    return out
