"""Load a pipeline YAML into a checked `PipelineSpec`, or fail with ONE line naming the path.

Steps: read + parse YAML (errors give line:column) -> `${VAR}` / `${VAR:-default}` interpolation ->
`--set dotted.path=value` overrides (values parsed as YAML scalars) -> types, stage kinds and options ->
graph checks (dangling inputs, cycles, sources without / others with inputs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from streamyolox.graph.options import SpecError, build_dataclass, convert, override_path, unknown_key_error
from streamyolox.graph.placement import yuv_refusal
from streamyolox.graph.spec import ExecutorSpec, MetricsSpec, PipelineSpec, StageSpec
from streamyolox.model.spec import ModelSpec
from streamyolox.stages.base import Stage
from streamyolox.stages.registry import StageKindError, load_stage_class

__all__ = ["SpecError", "apply_overrides", "interpolate", "load_pipeline", "parse_pipeline"]

TOP_KEYS = ("name", "model", "stages", "metrics", "executor")
# Stage keys the runtime reads; everything else goes to the stage's Config. `threads` goes to both when the
# Config declares it too.
RUNTIME_FIELDS = {f: StageSpec.__dataclass_fields__[f] for f in
                  ("worker", "queue", "policy", "restart", "max_restarts", "listen", "threads",
                   "replicas", "resources")}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string. A whole-string reference keeps YAML typing
    (`size: ${SIZE:-416}` gives an int); an unset variable without default is an error naming `path`."""
    if isinstance(node, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is None:
            raise SpecError(f"{path}: environment variable {name!r} is not set (use ${{{name}:-default}})")
        return default

    whole = _VAR.fullmatch(node)
    text = _VAR.sub(sub, node)
    return _scalar(text) if whole else text


def _scalar(text: str) -> Any:
    """A YAML scalar (`416` -> int, `true` -> bool, `[1, 2]` -> list); plain text when it does not parse."""
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text


def apply_overrides(doc: dict[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """Apply `dotted.path=value` assignments in order (creating missing mappings); returns `doc`."""
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"--set {item}: expected dotted.path=value")
        value = _scalar(raw)
        parts = override_path(doc, key.strip(), value)  # `streams.cam.1`: one id; `[key]` literal
        node: Any = doc
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecError(f"--set {item}: {'.'.join(parts[:i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return doc


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names one key twice: PyYAML would silently keep the last (two `json:` stages become one)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that rejects a key given twice in one mapping (merge keys `<<` may still be
    overridden, as YAML intends)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise _DuplicateKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse the file; errors: `FILE: no such file`, `FILE:LINE:COL: invalid YAML: problem`,
    `FILE:LINE:COL: duplicate key 'json'`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = "" if isinstance(exc, _DuplicateKey) else "invalid YAML: "
        raise SpecError(f"{where}: {what}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(doc).__name__}")
    return doc


def load_pipeline(path: str | os.PathLike[str], sets: Sequence[str] = (),
                  env: Mapping[str, str] | None = None) -> PipelineSpec:
    """Read, interpolate, override and check a pipeline file. Raises `SpecError` with one line that starts
    with the file name."""
    doc = read_yaml(path)
    try:
        doc = interpolate(doc, os.environ if env is None else env)
        doc = apply_overrides(doc, sets)
        return parse_pipeline(doc, source=str(path))
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def _stage_kind(sid: str, body: dict[str, Any]) -> type[Stage]:
    kind = body.get("kind")
    if not isinstance(kind, str) or not kind:
        raise SpecError(f"stages.{sid}.kind: expected a stage kind (str), got {kind!r}")
    try:
        return load_stage_class(kind)
    except StageKindError as exc:
        raise SpecError(f"stages.{sid}.kind: {exc}") from None


def _inputs(sid: str, body: dict[str, Any]) -> tuple[str, ...]:
    raw = body.get("inputs", [])
    if isinstance(raw, str):
        raw = [raw]
    return tuple(convert(raw, list[str], f"stages.{sid}.inputs"))


def parse_stage(sid: str, body: Any) -> StageSpec:
    """One `stages.<sid>` mapping -> `StageSpec` (its options checked against the kind's Config)."""
    path = f"stages.{sid}"
    if not isinstance(body, dict):
        raise SpecError(f"{path}: expected a mapping with 'kind', got {body!r}")
    cls = _stage_kind(sid, body)
    inputs = _inputs(sid, body)
    runtime: dict[str, Any] = {}
    options: dict[str, Any] = {}
    config_fields = getattr(cls.Config, "__dataclass_fields__", {})
    for key, value in body.items():
        if key in ("kind", "inputs"):
            continue
        if key in RUNTIME_FIELDS:
            runtime[key] = value
            if key in config_fields:
                options[key] = value
        elif key in config_fields:
            options[key] = value
        else:
            raise unknown_key_error(path, key, [*config_fields, *RUNTIME_FIELDS, "kind", "inputs"])
    config = build_dataclass(cls.Config, options, path)
    fields = {k: convert(v, _runtime_type(k), f"{path}.{k}") for k, v in runtime.items()}
    spec = StageSpec(id=sid, kind=body["kind"], inputs=inputs, options=config,
                     is_source=bool(cls.is_source), is_sink=bool(cls.is_sink), **fields)
    _check_runtime(spec, path)
    if spec.replicas > 1 and not cls.replicable:
        raise SpecError(f"{path}.replicas: stage kind {spec.kind!r} keeps per-stream state (every frame of a "
                        "stream must reach one instance in order); use replicas: 1")
    return spec


def _runtime_type(key: str) -> Any:
    import typing

    import streamyolox.graph.spec as spec_module

    return typing.get_type_hints(StageSpec, vars(spec_module))[key]


def _check_runtime(spec: StageSpec, path: str) -> None:
    if spec.queue < 1:
        raise SpecError(f"{path}.queue: expected a positive int, got {spec.queue}")
    if spec.max_restarts < 0:
        raise SpecError(f"{path}.max_restarts: expected an int >= 0, got {spec.max_restarts}")
    if spec.threads is not None and spec.threads < 1:
        raise SpecError(f"{path}.threads: expected a positive int, got {spec.threads}")
    if spec.listen is not None and not re.fullmatch(r"tcp://[^:/]+:\d+", spec.listen):
        raise SpecError(f"{path}.listen: expected tcp://host:port, got {spec.listen!r}")
    _check_replicas(spec, path)
    _check_resources(spec, path)
    if spec.is_source and spec.inputs:
        raise SpecError(f"{path}.inputs: a source stage ({spec.kind!r}) takes no inputs")
    if not spec.is_source and not spec.inputs:
        raise SpecError(f"{path}.inputs: stage kind {spec.kind!r} needs at least one input")


def _check_resources(spec: StageSpec, path: str) -> None:
    """`resources: {num_cpus: 1, num_gpus: 0.5}`: what a cluster node must have free for this stage."""
    for key, value in (spec.resources or {}).items():
        if key not in ("num_cpus", "num_gpus"):
            raise unknown_key_error(f"{path}.resources", key, ["num_cpus", "num_gpus"])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise SpecError(f"{path}.resources.{key}: expected a number >= 0, got {value!r}")


def _check_replicas(spec: StageSpec, path: str) -> None:
    """Replicas are separate processes fed by one distributing input (see docs/pipeline.md)."""
    if spec.replicas < 1:
        raise SpecError(f"{path}.replicas: expected a positive int, got {spec.replicas}")
    if spec.replicas == 1:
        return
    role = "source" if spec.is_source else "sink" if spec.is_sink else None
    if role is not None:
        raise SpecError(f"{path}.replicas: a {role} stage ({spec.kind!r}) cannot be replicated")
    for key in ("worker", "listen"):
        if getattr(spec, key) is not None:
            raise SpecError(f"{path}.replicas: cannot be combined with {key!r} (each replica is its own process)")
    if len(spec.inputs) != 1:
        raise SpecError(f"{path}.replicas: a replicated stage takes exactly one input, got {list(spec.inputs)}")


def _check_replica_inputs(stages: dict[str, StageSpec]) -> None:
    for s in stages.values():
        if s.replicas > 1 and stages[s.inputs[0]].replicas > 1:
            raise SpecError(f"stages.{s.id}.replicas: its input {s.inputs[0]!r} is replicated too; put a "
                            "stage with replicas: 1 between them")


def check_graph(stages: dict[str, StageSpec]) -> None:
    """Dangling inputs, duplicate inputs and cycles (reported as `stages: cycle a -> b -> a`)."""
    for s in stages.values():
        for src in s.inputs:
            if src not in stages:
                raise unknown_key_error(f"stages.{s.id}.inputs", src, stages, what="stage")
        if len(set(s.inputs)) != len(s.inputs):
            raise SpecError(f"stages.{s.id}.inputs: an input is listed twice: {list(s.inputs)}")
    _check_replica_inputs(stages)
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done

    def visit(sid: str, stack: list[str]) -> None:
        state[sid] = 1
        for src in stages[sid].inputs:
            if state.get(src) == 1:
                loop = [*stack[stack.index(src):], src]
                raise SpecError("stages: cycle " + " -> ".join(reversed(loop)))
            if state.get(src) is None:
                visit(src, [*stack, src])
        state[sid] = 2

    for sid in stages:
        if sid not in state:
            visit(sid, [sid])


def parse_pipeline(doc: dict[str, Any], source: str = "<memory>") -> PipelineSpec:
    """Plain data (already interpolated and overridden) -> `PipelineSpec`."""
    for key in doc:
        if key not in TOP_KEYS:
            raise unknown_key_error("", key, TOP_KEYS, what="top-level key")
    name = convert(doc.get("name", Path(source).stem), str, "name")
    model = build_dataclass(ModelSpec, doc.get("model") or {}, "model")
    metrics = build_dataclass(MetricsSpec, doc.get("metrics") or {}, "metrics")
    executor = build_dataclass(ExecutorSpec, doc.get("executor") or {}, "executor")
    raw_stages = doc.get("stages")
    if not isinstance(raw_stages, dict) or not raw_stages:
        raise SpecError(f"stages: expected a mapping of stage id -> stage, got {raw_stages!r}")
    stages = {}
    for sid, body in raw_stages.items():
        if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z_][\w-]*", sid):
            raise SpecError(f"stages: invalid stage id {sid!r} (letters, digits, _ and -)")
        stages[sid] = parse_stage(sid, body)
    check_graph(stages)
    spec = PipelineSpec(name=name, model=model, stages=stages, metrics=metrics, source=source, executor=executor)
    check_pixel_formats(spec)
    return spec


def check_pixel_formats(spec: PipelineSpec) -> None:
    """A decode stage set to hand on YUV planes feeds only stages that take them (`placement.yuv_refusal`)."""
    for s in spec.stages.values():
        if getattr(s.options, "pixel_format", None) == "yuv420p" and s.kind == "decode":
            reason = yuv_refusal(spec, s.id)
            if reason is not None:
                raise SpecError(f"stages.{s.id}.pixel_format: yuv420p hands on no BGR frame, but {reason}; "
                                "set auto or bgr24")
