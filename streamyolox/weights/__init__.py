"""Weights I/O: official and project checkpoints, official ONNX exports, ONNX export, the zoo download hub."""

from streamyolox.weights.checkpoint import WeightsError, load_checkpoint, read_checkpoint, save_checkpoint
from streamyolox.weights.export import export_onnx
from streamyolox.weights.hub import download_weights, find_local, resolve_weights
from streamyolox.weights.load import LoadedModel, load_model
from streamyolox.weights.onnx_import import load_onnx_weights

__all__ = [
    "LoadedModel",
    "WeightsError",
    "download_weights",
    "export_onnx",
    "find_local",
    "load_checkpoint",
    "load_model",
    "load_onnx_weights",
    "read_checkpoint",
    "resolve_weights",
    "save_checkpoint",
]
