"""streamyolox: a real-time video analytics pipeline on the YOLOX detector."""

from streamyolox.detections import Detections, FrameMeta

__all__ = ["Detections", "FrameMeta"]
__version__ = "0.1.0"
