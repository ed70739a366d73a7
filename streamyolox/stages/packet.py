"""`Packet`: what flows along a pipeline edge, one per frame.

Stages add to a packet and pass it on (decode sets `frame` or `yuv`, letterbox `image` and `ratio`, yolox `raw`,
nms `detections`), so a sink downstream of `nms` has the original frame too. Arrays travel between
processes through shared-memory slots; the socket carries only the small header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from streamyolox.analytics.events import Counts, Event
from streamyolox.detections import Detections, FrameMeta

if TYPE_CHECKING:  # importing streamyolox.ops loads cv2, which the runner (it imports this module) never uses
    from streamyolox.ops.yuv import Yuv420


@dataclass
class Packet:
    """One frame's data.

    Attributes:
        meta: stream id, frame index, PTS, capture time, original size.
        frame (ndarray[H, W, 3] uint8 | None): the decoded frame, BGR.
        yuv: the decoded frame as the decoder's YUV 4:2:0 planes instead of `frame`, from a decode stage
            whose `pixel_format` is yuv420p (only letterbox stages read it; over a process edge it travels
            pickled in the header, so the runtime chooses it only where the letterbox shares the process).
        image (ndarray[3, S_h, S_w] float32 | None): letterboxed model input, BGR 0-255, image top-left,
            pad 114 (a CuPy/torch CUDA array when it stays on the GPU inside one worker).
        ratio: letterbox scale, model-input pixels per original pixel.
        raw (ndarray[N, 5 + C] float32 | None): model output, (cx, cy, w, h) in input pixels, obj, cls.
        detections: final detections in original-frame pixels.
        events: line crossings and zone enters/exits confirmed on this frame (the `count` stage).
        counts: the stream's running totals after this frame, with the lines and zones they refer to
            (`count` stage; None without one).
        extra: small JSON-able values stages attach (e.g. `{"reconnects": 2}`).
    """

    meta: FrameMeta
    frame: np.ndarray | None = None
    yuv: Yuv420 | None = None
    image: Any = None
    ratio: float = 1.0
    raw: np.ndarray | None = None
    detections: Detections | None = None
    events: list[Event] = field(default_factory=list)
    counts: Counts | None = None
    extra: dict[str, Any] = field(default_factory=dict)
