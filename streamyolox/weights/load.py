"""`load_model`: one entry point from any weights form (official/project .pth, official .onnx, zoo name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from streamyolox.classes import resolve_class_names
from streamyolox.model import YOLOX, ZOO, build_model, canonical_name
from streamyolox.weights.checkpoint import WeightsError, infer_arch, load_state_dict_checked, read_checkpoint
from streamyolox.weights.hub import resolve_weights
from streamyolox.weights.onnx_import import infer_onnx_model_name, load_onnx_weights, read_onnx


@dataclass
class LoadedModel:
    """A ready model: `model` in eval mode (fused unless asked not to) on its device, and what it expects.

    Attributes:
        name: zoo name or `custom`; class_names: one per class (`resolve_class_names`);
        input_size: (h, w) the weights were made for; source_path: the file the weights came from.
    """

    model: YOLOX
    name: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]
    source_path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def default_class_names(num_classes: int, source: str = "the weights") -> tuple[str, ...]:
    """Names for weights that record none: COCO's for 80 classes, else `class_0`, ... (with one warning)."""
    return resolve_class_names(None, num_classes, source)


def _test_size(name: str) -> tuple[int, int]:
    return ZOO[name].test_size if name in ZOO else (640, 640)


def _name_from_state_dict(state_dict: dict, source: str) -> str:
    info = infer_arch(state_dict)
    if info.darknet:
        return "yolox-darknet53"
    if info.width is None:
        raise WeightsError(f"{source}: not a YOLOX checkpoint (no backbone stem weights)")
    for name, entry in ZOO.items():
        same = (entry.width, entry.depthwise, round(3 * entry.depth)) == (
            info.width,
            info.depthwise,
            info.blocks,
        )
        if same and not entry.darknet:
            return name
    raise WeightsError(
        f"{source}: architecture (width {info.width}) matches no zoo model; pass the model name"
    )


def _build_from_meta(meta: dict[str, Any], source: str) -> YOLOX:
    """Rebuild the architecture a project checkpoint records (name, class count, multipliers)."""
    try:
        key = canonical_name(str(meta["name"]))
        nc = int(meta["num_classes"])
        if key in ZOO and ZOO[key].darknet:
            return build_model(key, nc)
        arch = {k: meta.get(k) for k in ("depth", "width", "depthwise", "act")}
        return build_model(key, nc, **arch)
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{source}: bad streamyolox metadata ({exc})") from exc


def _load_torch(path: Path, name: str | None, num_classes: int | None) -> LoadedModel:
    sd, meta = read_checkpoint(path)
    if meta:  # project checkpoint: the file says what it is, overriding the caller's defaults
        model = _build_from_meta(meta, path.name)
        key = model.name
        if num_classes is not None and num_classes != model.num_classes:
            raise WeightsError(
                f"{path.name}: checkpoint has {model.num_classes} classes, asked for {num_classes}"
            )
        names = resolve_class_names(meta.get("class_names"), model.num_classes, str(path.resolve()))
        size = tuple(meta.get("input_size") or _test_size(key))
    else:
        key = canonical_name(name) if name else _name_from_state_dict(sd, path.name)
        nc = num_classes if num_classes is not None else (infer_arch(sd).num_classes or 80)
        model = build_model(key, nc)
        names, size, meta = default_class_names(nc, str(path.resolve())), _test_size(key), {}
    load_state_dict_checked(model, sd, path.name)
    return LoadedModel(model, model.name, names, (int(size[0]), int(size[1])), path, dict(meta))


def _load_onnx(path: Path, name: str | None, num_classes: int | None) -> LoadedModel:
    info = read_onnx(path)
    key = canonical_name(name) if name else infer_onnx_model_name(info, path.name)
    model = load_onnx_weights(build_model(key, num_classes or info.num_classes), path)
    size = info.input_size or _test_size(key)
    return LoadedModel(model, key, default_class_names(model.num_classes, str(path.resolve())), size, path)


def load_model(
    weights: str | Path | None,
    name: str | None = None,
    num_classes: int | None = None,
    device: str = "cpu",
    fuse: bool = True,
) -> LoadedModel:
    """Load a ready-to-run YOLOX from `weights`: a `.pth` (official or project checkpoint), an official
    BN-folded `.onnx` export, or a zoo name (found locally or downloaded); None means the zoo weights of `name`.

    `name` picks the architecture for official files (inferred from the weights when None) and is
    ignored for project checkpoints, which record their own. Raises WeightsError (a ValueError) with one
    line naming the file and the mismatch.
    """
    if weights is None:
        if name is None:
            raise WeightsError("no weights given: pass --weights PATH or a model name to download")
        weights = name
    path = resolve_weights(weights)
    loaded = (
        _load_onnx(path, name, num_classes)
        if path.suffix == ".onnx"
        else _load_torch(path, name, num_classes)
    )
    model = loaded.model.eval()
    if fuse:
        model.fuse()
    loaded.model = model.to(torch.device(device))
    return loaded
