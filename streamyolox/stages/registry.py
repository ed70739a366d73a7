"""Stage kinds: built-ins by name, user stages by import path (`kind: mypkg.mymodule:MyStage`).

Classes are imported lazily, so listing or validating a pipeline never loads a model or opens a device.
"""

from __future__ import annotations

import importlib

from streamyolox.stages.base import Stage

BUILTIN_STAGES: dict[str, str] = {
    "decode": "streamyolox.stages.decode:DecodeStage",
    "letterbox": "streamyolox.stages.letterbox:LetterboxStage",
    "yolox": "streamyolox.stages.yolox:YoloxStage",
    "nms": "streamyolox.stages.nms:NmsStage",
    "track": "streamyolox.stages.track:TrackStage",
    "count": "streamyolox.stages.count:CountStage",
    "json": "streamyolox.stages.json_sink:JsonSink",
    "mp4": "streamyolox.stages.mp4_sink:Mp4Sink",
    "zmq": "streamyolox.stages.zmq_sink:ZmqSink",
    "mqtt": "streamyolox.stages.mqtt_sink:MqttSink",
    "display": "streamyolox.stages.display:DisplaySink",
}


class StageKindError(ValueError):
    """The `kind` names no built-in stage and no importable `module:Class`."""


def load_stage_class(kind: str) -> type[Stage]:
    """Resolve a stage kind to its class; raises `StageKindError` with a one-line reason."""
    target = BUILTIN_STAGES.get(kind, kind)
    if ":" not in target:
        known = ", ".join(sorted(BUILTIN_STAGES))
        raise StageKindError(f"unknown stage kind {kind!r} (built-ins: {known}; user stages: 'module:Class')")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StageKindError(f"cannot import {module_name!r} for stage kind {kind!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise StageKindError(f"{target!r} is not a streamyolox Stage subclass")
    return cls
