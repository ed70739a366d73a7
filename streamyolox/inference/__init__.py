"""Inference backends: one callable per way of running the model (torch, onnxruntime, OpenVINO)."""

from streamyolox.inference.backends import Backend, OrtBackend, TorchBackend, make_backend
from streamyolox.inference.openvino_backend import OpenVinoBackend

__all__ = ["Backend", "OpenVinoBackend", "OrtBackend", "TorchBackend", "make_backend"]
