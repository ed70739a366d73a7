"""Check plain YAML values against dataclass field types and build the dataclass.

Supported field types: int, float, str, bool, None, Optional/`X | None`, unions, list[X], tuple[X, ...],
tuple[X, Y], dict[str, X], Literal[...], nested dataclasses, Any. Every error names its dotted path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any, Literal, Union

from streamyolox.config_fields import RESOLVED_KEY


class SpecError(ValueError):
    """A one-line pipeline error: `path: what is wrong`."""


def _name(tp: Any) -> str:
    """Readable type name: `int`, `int | None`, `list[str]`, `one of 'a', 'b'`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else _name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def _fail(path: str, tp: Any, value: Any) -> SpecError:
    return SpecError(f"{path}: expected {_name(tp)}, got {value!r}")


def _convert_scalar(value: Any, tp: Any, path: str) -> Any:
    # bool is an int subclass in Python; YAML `true` is never a valid count.
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is type(None):
        if value is None:
            return None
    elif tp is Any or tp is object:
        return value
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return build_dataclass(typing.cast(type, tp), value, path)
    else:
        raise SpecError(f"{path}: unsupported option type {_name(tp)}")
    raise _fail(path, tp, value)


def _convert_union(value: Any, tp: Any, path: str) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return convert(value, arg, path)
        except SpecError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]  # Optional[X]: X's own error (`expected int`) reads best
    raise _fail(path, tp, value)


def _convert_sequence(value: Any, tp: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if not isinstance(value, (list, tuple)):
        raise _fail(path, tp, value)
    if origin is list:
        item = args[0] if args else Any
        return [convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item = args[0] if args else Any
        return tuple(convert(v, item, f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise SpecError(f"{path}: expected {len(args)} items ({_name(tp)}), got {len(value)}")
    return tuple(convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))


def convert(value: Any, tp: Any, path: str) -> Any:
    """Check `value` (plain YAML data) against type `tp`; return it converted (lists to tuples, ints to
    floats where declared). Raises `SpecError` naming `path`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and not (isinstance(value, bool) and True in allowed):
            return value
        raise _fail(path, tp, value)
    if origin in (Union, types.UnionType):
        return _convert_union(value, tp, path)
    if origin in (list, tuple):
        return _convert_sequence(value, tp, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, tp, value)
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return {convert(k, key_tp, f"{path}"): convert(v, val_tp, f"{path}.{k}") for k, v in value.items()}
    return _convert_scalar(value, tp, path)


def unknown_key_error(path: str, key: str, known: typing.Iterable[str], what: str = "option") -> SpecError:
    """`path: unknown option 'sise' (did you mean 'size'?)`, or the list of valid keys."""
    known = sorted(known)
    close = difflib.get_close_matches(str(key), known, n=1)
    if close:
        hint = f" (did you mean {close[0]!r}?)"
    else:
        hint = f" (valid: {', '.join(known)})" if known else f" (this takes no {what}s)"
    where = f"{path}: " if path else ""
    return SpecError(f"{where}unknown {what} {key!r}{hint}")


def dataclass_fields(cls: type) -> dict[str, tuple[Any, bool, Any]]:
    """name -> (resolved type, required, default) for each init field of a dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get(RESOLVED_KEY):
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default: Any = None
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out[f.name] = (hints.get(f.name, Any), required, default)
    return out


def build_dataclass(cls: type, values: dict[str, Any], path: str) -> Any:
    """`cls(**values)` after checking keys and types; errors name `path.key`."""
    fields = dataclass_fields(cls)
    for key in values:
        if key not in fields:
            raise unknown_key_error(path, key, fields)
    for name, (_, required, _) in fields.items():
        if required and name not in values:
            raise SpecError(f"{path}: missing required option {name!r}")
    kwargs = {k: convert(v, fields[k][0], f"{path}.{k}" if path else k) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # a Config's own __post_init__ checks
        raise SpecError(option_message(path, str(exc), fields)) from exc


# `option: why`, `option[2]: why`, `kind.option: why` (decode's messages carried the kind) or a nested
# `option.key.sub: why` (a decode stream: `streams.yard.max_fps: ...`) from a __post_init__
_OPTION_PATH = re.compile(r"[\w.\[\]-]+")


def option_message(path: str, message: str, fields: typing.Container[str]) -> str:
    """`path.option: why` when `message` names one of `fields` first, else `path: message`."""
    head, sep, why = message.partition(": ")
    if sep and _OPTION_PATH.fullmatch(head):
        for option in (head, head.partition(".")[2]):
            name = re.split(r"[.\[]", option, maxsplit=1)[0]
            if name and name in fields:
                return f"{path}.{option}: {why}" if path else f"{option}: {why}"
    return f"{path}: {message}" if path else message


# `name[key]` in a --set path: `key` taken literally, dots included (stream ids may hold dots; no id, option
# or stage name holds brackets)
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")


def _path_parts(key: str) -> list[tuple[str, bool]]:
    """`a.b[c.d].e` -> [(a, False), (b, False), (c.d, True), (e, False)]; SpecError on a stray bracket."""
    chunks = _BRACKETED.split(key)
    parts: list[tuple[str, bool]] = []
    for i, chunk in enumerate(chunks):
        if i % 2:  # a bracketed key
            parts.append((chunk, True))
            continue
        if "[" in chunk or "]" in chunk:
            raise SpecError(f"--set {key}: unbalanced brackets (write name[KEY])")
        if i and chunk.startswith("."):  # `[key].e`: the dot after a bracket
            chunk = chunk[1:]
        if chunk or len(chunks) == 1:  # nothing between two brackets or at an end is no key
            parts.extend((p, False) for p in chunk.split("."))
    return parts


def _streams_stage(doc: dict[str, Any], sid: str) -> bool:
    """Whether `stages.<sid>` is a decode stage (or a kind derived from it): its `streams` keys are ids."""
    from streamyolox.stages.registry import StageKindError, load_stage_class

    body = (doc.get("stages") or {}).get(sid) if isinstance(doc.get("stages"), dict) else None
    kind = body.get("kind", "decode") if isinstance(body, dict) else "decode"
    if kind == "decode":
        return True
    try:
        from streamyolox.stages.decode import DecodeStage

        return isinstance(kind, str) and issubclass(load_stage_class(kind), DecodeStage)
    except StageKindError:
        return False


def override_path(doc: dict[str, Any], key: str, value: Any) -> list[str]:
    """The mapping keys a `--set key=value` walks. Dots separate keys, `[...]` holds one key literally.
    Behind `stages.<id>.streams.` of a decode stage the whole rest is ONE stream id (ids may hold dots:
    `stages.source.streams.cam.1=clip.mp4` adds stream `cam.1`); a plain value given to a stream that is a
    mapping of options sets its url. A stream's own options: `stages.source.streams[cam.1].max_fps=5` (a
    stream given as a bare url becomes `{url: ...}` first)."""
    parts = _path_parts(key)
    names = [p for p, _ in parts]
    if (len(parts) >= 4 and names[0] == "stages" and names[2] == "streams"
            and not any(bracketed for _, bracketed in parts[:3]) and _streams_stage(doc, names[1])):
        if not parts[3][1]:
            names = [*names[:3], ".".join(names[3:])]
            if value is not None and not isinstance(value, (str, dict)):
                raise SpecError(f"--set {key}: stream {names[3]!r} takes a url or a mapping of options, got "
                                f"{value!r} (one option of a stream: stages.{names[1]}.streams[ID].OPTION=VALUE)")
        _stream_entry(doc, names, value)
    if any(not n for n in names):
        raise SpecError(f"--set {key}: empty key in the path")
    return names


def _stream_entry(doc: dict[str, Any], names: list[str], value: Any) -> None:
    """Make `names` (stages.<id>.streams.<stream>[.option...]) fit the stream's current entry: a url to a
    mapping of options sets its `url`; an option of a bare-url stream turns it into `{url: ...}`."""
    stages = doc.get("stages")
    body = stages.get(names[1]) if isinstance(stages, dict) else None
    streams = body.get("streams") if isinstance(body, dict) else None
    entry = streams.get(names[3]) if isinstance(streams, dict) else None
    if len(names) == 4 and isinstance(entry, dict) and not isinstance(value, dict):
        names.append("url")
    elif len(names) > 4 and isinstance(entry, str) and isinstance(streams, dict):
        streams[names[3]] = {"url": entry}
