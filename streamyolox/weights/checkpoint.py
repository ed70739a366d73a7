"""PyTorch checkpoints: official YOLOX `.pth` files and the project's own, with one-line errors on mismatch."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from streamyolox.model import YOLOX
from streamyolox.weights.files import (  # re-exported: they lived here before the torch-free split
    CLS_KEY,
    DARKNET_KEY,
    FOCUS_KEY,
    ArchInfo,
    WeightsError,
    infer_arch,
    partial_path,
)

FORMAT_VERSION = 1
_DARKNET_KEY, _FOCUS_KEY, _CLS_KEY = DARKNET_KEY, FOCUS_KEY, CLS_KEY


def _describe(info: ArchInfo) -> str:
    if info.darknet:
        return "yolox-darknet53"
    return f"width {info.width:g}" + (" (depthwise)" if info.depthwise else "")


def mismatch_reason(model: YOLOX, state_dict: Mapping[str, Tensor], source: str) -> str | None:
    """Why `state_dict` cannot load strictly into `model` (the first, most useful reason), or None if it can."""
    want, got = infer_arch(model.state_dict()), infer_arch(state_dict)
    label = model.name
    if not state_dict or (got.width is None and not got.darknet):
        return f"{source}: not a YOLOX checkpoint (no {_FOCUS_KEY} or {_DARKNET_KEY})"
    if (want.darknet, want.width, want.depthwise) != (got.darknet, got.width, got.depthwise):
        return f"{source}: checkpoint is for {_describe(got)}, model {label} expects {_describe(want)}"
    if want.blocks != got.blocks:
        return f"{source}: checkpoint has {got.blocks} bottlenecks per neck CSP layer, model {label} has {want.blocks}"
    if want.num_classes != got.num_classes:
        return f"{source}: {_CLS_KEY} has {got.num_classes} classes, model has {want.num_classes}"
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        return f"{source}: {len(missing)} missing keys (first {missing[:1]}), {len(unexpected)} unexpected (first {unexpected[:1]})"
    for key, tensor in expected.items():
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            return (
                f"{source}: {key} has shape {list(state_dict[key].shape)}, model expects {list(tensor.shape)}"
            )
    return None


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any] | None]:
    """Read a `.pth` file -> (state_dict, project metadata or None).

    Accepts `{"model": sd, ...}` (official and project) or a bare state_dict; strips a DataParallel
    `module.` prefix. Raises WeightsError (one line) on a missing, truncated or non-checkpoint file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises anything from KeyError to BadZipFile on a bad file
        detail = str(exc).strip().splitlines()[0][:80] if str(exc).strip() else ""
        raise WeightsError(
            f"{path.name}: not a readable PyTorch checkpoint, truncated or another format ({type(exc).__name__}: {detail})"
        ) from exc
    if not isinstance(ckpt, dict):
        raise WeightsError(f"{path.name}: not a YOLOX checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    meta = ckpt.get("streamyolox") if isinstance(ckpt.get("streamyolox"), dict) else None
    sd = ckpt.get("model", ckpt)
    if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise WeightsError(f"{path.name}: not a YOLOX checkpoint (no state_dict under 'model')")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd, meta


def load_checkpoint(model: YOLOX, path: str | Path) -> dict[str, Any] | None:
    """Load an official or project `.pth` into `model` with strict=True; returns the project metadata or None.

    Raises WeightsError naming the mismatch (architecture, width, depth, class count) in one line.
    """
    sd, meta = read_checkpoint(path)
    load_state_dict_checked(model, sd, Path(path).name)
    return meta


def load_state_dict_checked(model: YOLOX, state_dict: Mapping[str, Tensor], source: str) -> None:
    """`model.load_state_dict(state_dict, strict=True)`, but a mismatch is a one-line WeightsError."""
    reason = mismatch_reason(model, state_dict, source)
    if reason:
        raise WeightsError(reason)
    model.load_state_dict(state_dict, strict=True)


def save_checkpoint(
    path: str | Path,
    model: YOLOX,
    name: str,
    class_names: Sequence[str],
    input_size: tuple[int, int],
    **extra: Any,
) -> Path:
    """Write a project checkpoint `{"model": sd, "streamyolox": {...}}` atomically (temp file, then rename).

    The metadata (name, num_classes, class_names, input_size (h, w), depth, width, depthwise, act,
    format_version, plus `extra`, which must be plain Python values) lets `load_model` rebuild the model
    from the file alone. The model must not be fused: a fused state_dict does not load into a trainable model.
    """
    if model.is_fused:
        raise ValueError("save_checkpoint: the model is fused (BatchNorm folded); save the unfused model")
    if len(class_names) != model.num_classes:
        raise ValueError(
            f"save_checkpoint: {len(class_names)} class names for a {model.num_classes}-class model"
        )
    meta = {
        "name": name,
        "num_classes": model.num_classes,
        "class_names": [str(c) for c in class_names],
        "input_size": [int(input_size[0]), int(input_size[1])],
        "depth": model.depth,
        "width": model.width,
        "depthwise": model.depthwise,
        "act": model.act,
        "format_version": FORMAT_VERSION,
        **extra,
    }
    sd = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        torch.save({"model": sd, "streamyolox": meta}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
