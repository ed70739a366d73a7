"""`nms` stage: score threshold + class-aware NMS -> `Detections` in original-frame pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from streamyolox.config_fields import ranged
from streamyolox.detections import Detections
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet


@dataclass
class NmsConfig(StageConfig):
    """score_threshold: objectness x class probability; iou_threshold: NMS overlap; class_agnostic: one NMS
    over all classes; classes: keep only these class ids (None: all)."""

    score_threshold: float = ranged(0.25, ge=0, le=1)
    iou_threshold: float = ranged(0.45, ge=0, le=1)
    class_agnostic: bool = False
    classes: list[int] | None = ranged(None, ge=0)  # noqa: RUF009 (ranged returns a dataclasses.field)


class NmsStage(Stage):
    kind = "nms"
    Config = NmsConfig
    description = "decode boxes, threshold scores, class-aware NMS -> Detections"

    def open(self) -> None:
        from streamyolox.inference.metadata import class_names_for
        from streamyolox.ops import postprocess

        cfg: NmsConfig = self.config
        self.class_names = class_names_for(self.ctx.model)
        self._postprocess: Callable[..., Detections] = postprocess
        self._gpu = None
        if self.ctx.model is not None and self.ctx.model.device.startswith("cuda"):
            from streamyolox.ops.gpu_postprocess import PostprocessGPU

            # one instance for the run: it keeps its device buffers between frames
            self._gpu = PostprocessGPU(cfg.score_threshold, cfg.iou_threshold, cfg.class_agnostic, self.class_names)

    def process(self, packet: Packet) -> list[Packet]:
        cfg: NmsConfig = self.config
        if packet.raw is None:
            raise ValueError(f"nms: frame {packet.meta.frame} has no model output (is a yolox stage upstream?)")
        if self._gpu is not None and not isinstance(packet.raw, np.ndarray):
            dets = self._gpu(packet.raw, packet.ratio)
        else:
            dets = self._postprocess(
                packet.raw, packet.ratio, score_threshold=cfg.score_threshold, iou_threshold=cfg.iou_threshold,
                class_agnostic=cfg.class_agnostic, class_names=self.class_names,
            )
        if cfg.classes is not None:
            dets = dets[np.isin(dets.class_ids, cfg.classes)]
        packet.detections = dets
        packet.raw = None
        return [packet]
