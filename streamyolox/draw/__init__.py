"""Drawing detections on frames: one `annotate` shared by the mp4, display and zmq (thumbnail) sinks."""

from streamyolox.draw.annotate import DrawStyle, annotate, annotate_counts, label_text, put_label
from streamyolox.draw.palette import class_color, text_color

__all__ = ["DrawStyle", "annotate", "annotate_counts", "class_color", "label_text", "put_label", "text_color"]
