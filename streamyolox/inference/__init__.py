"""Inference backends: one callable per way of running the model (torch, onnxruntime)."""

from streamyolox.inference.backends import Backend, OrtBackend, TorchBackend, make_backend

__all__ = ["Backend", "OrtBackend", "TorchBackend", "make_backend"]
