"""Before start: the model block's weights resolved and checked, and its input size and class names
decided once, into the spec (`resolve_model`), so that no stage re-derives them.

Torch-free on purpose (`streamyolox.weights.files`, the skeleton reader of `inference.metadata`, the hub):
the runner process never holds torch, and `streamyolox validate` stays well under a second for `.pth`
weights. An `.onnx` file is read with `onnx` (about 1 s to import, only for such weights).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from streamyolox.graph.options import SpecError
from streamyolox.graph.spec import PipelineSpec
from streamyolox.model.spec import ModelSpec
from streamyolox.weights.files import ArchInfo, WeightsError, describe_arch, infer_arch, zoo_name_of

# What torch.save wrote before its zip format (torch < 1.6): pickle protocol 2, then the magic number.
# Such files cannot be inspected without torch; they are let through to the loader.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
MODEL_KINDS = ("letterbox", "yolox", "nms")  # the built-in stages that read the model block


def uses_model(spec: PipelineSpec, local: list[str]) -> bool:
    """Whether a stage run on this host reads the model block."""
    return any(spec.stages[sid].kind in MODEL_KINDS for sid in local)


def weights_file(model: ModelSpec, download: bool) -> Path:
    """The file `model.weights` (or the zoo weights of `model.name`) names: a path, or a zoo name found in
    $STREAMYOLOX_WEIGHTS_DIR / the cache, else downloaded when `download`."""
    from streamyolox.weights.hub import RELEASE_FILES, cache_dir, find_local, looks_like_path, resolve_weights

    target = model.weights or model.name
    if not download and not looks_like_path(target) and not Path(target).expanduser().is_file():
        from streamyolox.model.zoo import canonical_name

        try:
            key = canonical_name(target)
        except ValueError:
            key = None
        if key in RELEASE_FILES and find_local(key) is None:
            raise SpecError(f"model.weights: {key} is not on this machine: put {RELEASE_FILES[key]} in "
                            f"$STREAMYOLOX_WEIGHTS_DIR or {cache_dir()}, or run `streamyolox weights download {key}`")
    try:
        return resolve_weights(target, download=download, show_progress=sys.stderr.isatty()).resolve()
    except WeightsError as exc:
        raise SpecError(f"model.weights: {exc}") from None


def _check_arch(info: ArchInfo, model: ModelSpec, source: str, what: str = "weights") -> None:
    """The official weights in `source` are of model.name's architecture (`custom` takes any)."""
    from streamyolox.model.zoo import canonical_name

    want = canonical_name(model.name)
    if want == "custom" or zoo_name_of(info) == want:
        return
    hint = zoo_name_of(info)
    fix = f"set model.name: {hint}" if hint else "give weights of that model"
    raise SpecError(f"model.weights: {source} holds {describe_arch(info)} {what}, but model.name is {want} ({fix})")


def _inspect_pth(path: Path, model: ModelSpec) -> None:
    from streamyolox.inference.metadata import read_skeleton

    ckpt = read_skeleton(path)
    if ckpt is None:
        with open(path, "rb") as f:
            if f.read(len(_LEGACY_TORCH_MAGIC)) == _LEGACY_TORCH_MAGIC:
                return
        raise SpecError(f"model.weights: {path.name}: not a readable PyTorch checkpoint (truncated, or another "
                        "format)")
    sd: Any = ckpt.get("model", ckpt)
    if not isinstance(sd, dict) or not sd:
        raise SpecError(f"model.weights: {path.name}: not a YOLOX checkpoint (no state_dict under 'model')")
    if all(str(k).startswith("module.") for k in sd):
        sd = {str(k).removeprefix("module."): v for k, v in sd.items()}
    info = infer_arch(sd)
    if info.width is None and not info.darknet:
        raise SpecError(f"model.weights: {path.name}: not a YOLOX checkpoint (no backbone stem weights)")
    if not isinstance(ckpt.get("streamyolox"), dict):  # a project checkpoint names its own architecture
        _check_arch(info, model, path.name)


def _inspect_onnx(path: Path, model: ModelSpec) -> tuple[int, int] | None:
    """Check an official-form export against model.name; its static input (h, w), if any."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf raises DecodeError and others on a bad file
        raise SpecError(f"model.weights: {path.name}: not a readable ONNX model ({type(exc).__name__})") from None
    inits = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    if not convs or len(convs[0].input) < 2 or convs[0].input[1] not in inits:
        raise SpecError(f"model.weights: {path.name}: not a YOLOX export (no convolution weights)")
    first = list(inits[convs[0].input[1]].dims)
    darknet = first[1] == 3  # a Focus stem sees 12 channels (space-to-depth), Darknet53's sees 3
    depthwise = any(a.name == "group" and a.i > 1 for n in convs for a in n.attribute)
    info = ArchInfo(darknet, None if darknet else first[0] / 64, depthwise, None, None)
    _check_arch(info, model, path.name, what="export")
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    return (dims[2], dims[3]) if len(dims) == 4 and dims[2] > 0 and dims[3] > 0 else None


def resolve_model(model: ModelSpec, download: bool) -> ModelSpec:
    """`model` with `weights` an absolute path, `input_size` and `class_names` filled in; `SpecError`
    (`model.weights: ...`) for weights missing, unreadable or not of `model.name`."""
    from streamyolox.inference.metadata import class_names_for, default_input_size

    path = weights_file(model, download)
    if path.suffix == ".onnx":
        size = _inspect_onnx(path, model) or default_input_size(None, model.name)
    else:
        _inspect_pth(path, model)
        size = default_input_size(path, model.name)
    resolved = dataclasses.replace(model, weights=str(path), input_size=model.input_size or size)
    return dataclasses.replace(resolved, class_names=class_names_for(resolved))


def check_model_inputs(spec: PipelineSpec) -> None:
    """Stage options that must agree with the resolved model: letterbox size, nms class ids, yolox
    concurrency (onnxruntime and OpenVINO only)."""
    from streamyolox.stages.letterbox import LetterboxConfig
    from streamyolox.stages.nms import NmsConfig
    from streamyolox.stages.yolox import YoloxConfig

    model = spec.model
    for sid, stage in spec.stages.items():
        cfg = stage.options
        if isinstance(cfg, LetterboxConfig) and cfg.size is not None and model.input_size is not None:
            h, w = model.input_size
            if (cfg.size, cfg.size) != (h, w):
                raise SpecError(f"stages.{sid}.size: {cfg.size} is not the model's input size {h}x{w} "
                                f"({model.name}); remove it, or set model.input_size: [{cfg.size}, {cfg.size}]")
        if isinstance(cfg, YoloxConfig) and cfg.concurrency > 1:
            backend = cfg.backend or model.backend
            if backend == "torch" or (backend == "auto" and model.device.startswith("cuda")):
                raise SpecError(f"stages.{sid}.concurrency: {cfg.concurrency} needs backend onnxruntime or openvino "
                                f"(the CPU runtimes), not torch")
        if isinstance(cfg, NmsConfig) and cfg.classes and model.class_names:
            count = len(model.class_names)
            for i, class_id in enumerate(cfg.classes):
                if class_id >= count:
                    raise SpecError(f"stages.{sid}.classes[{i}]: class id {class_id} is not one of the model's "
                                    f"{count} classes (0..{count - 1})")
