"""Output paths with a `{stream}` template (`out/{stream}.jsonl`): one file per stream.

A path is a `str.format` template (as the mqtt sink's topics): `{stream}` is the only field, `{{`/`}}` are
literal braces. Without `{stream}` a sink writes one file for every stream.

`may_collide` decides whether two templates (or a template and a plain path) can name the same file for
some stream ids, so the pre-start checks refuse two sinks that would write into each other's files, and
an output template that could overwrite an input. Stream ids are `[A-Za-z0-9_.-]+` (the decode stage
validates them; their 64-character limit is not modelled, so a collision needing a longer id is still
reported: the safe side). A template is a regular language; whether two intersect is a search over pairs
of positions in both, written here in a few lines: the regex libraries we depend on do not intersect
patterns.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass

from streamyolox.config_fields import OptionError

FIELD = "stream"
ID_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
# stream ids that would make a folder step of a file name
_UNSAFE_IDS = (".", "..")

# A position in a template's tokens: (index, inside). `inside` = at least one id character of the field
# at `index` was read (the field may read more, or end).
_State = tuple[int, bool]


@dataclass(frozen=True)
class PathTemplate:
    """A parsed `path` option: literal text (str) and `{stream}` fields (None), in order."""

    raw: str
    parts: tuple[str | None, ...]

    @property
    def templated(self) -> bool:
        return None in self.parts

    def render(self, stream: str) -> str:
        """The file of `stream` (the path itself when not templated)."""
        if self.templated and (stream in _UNSAFE_IDS or "/" in stream or "\0" in stream):
            raise ValueError(f"stream id {stream!r} cannot name a file in {self.raw!r}")
        return "".join(stream if p is None else p for p in self.parts)

    def absolute(self) -> PathTemplate:
        """The template with its folder before the first field resolved (`~`, symlinks, the cwd), so
        templates are compared as the files they name."""
        if not self.templated:
            return PathTemplate(self.raw, (os.path.realpath(os.path.expanduser(self.render(""))),))
        first = self.parts.index(None)
        head = "".join(p for p in self.parts[:first] if p is not None)
        folder, sep, name = head.rpartition("/")
        base = os.path.realpath(os.path.expanduser(folder if sep else "."))
        if sep and not folder:  # a template at the root, "/{stream}.jsonl"
            base = "/"
        prefix = os.path.join(base, name) if name else base.rstrip("/") + "/"
        return PathTemplate(self.raw, (prefix, *self.parts[first:]))

    def matches(self, path: str) -> bool:
        """`path` is one of the files this template names (compare with an `absolute()` template)."""
        pattern = "".join("[A-Za-z0-9_.-]+" if p is None else re.escape(p) for p in self.parts)
        return re.fullmatch(pattern, path) is not None

    def tokens(self) -> tuple[str | None, ...]:
        """One token per literal character; None = one or more stream-id characters."""
        return tuple(t for p in self.parts for t in ((None,) if p is None else tuple(p)))


def parse_path(option: str, value: str) -> PathTemplate:
    """Parse `value` as a path template; `OptionError` naming `option` for a field other than `{stream}`,
    a format spec or conversion, or an unmatched brace."""
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:  # "Single '}' encountered in format string", ...
        raise OptionError(option, f"{exc} in {value!r} (write {{{{ and }}}} for literal braces)") from None
    parts: list[str | None] = []
    for literal, name, spec, conversion in parsed:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        if name != FIELD or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise OptionError(option, f"unknown template field {shown} in {value!r}; only {{stream}} is known")
        parts.append(None)
    return PathTemplate(value, tuple(parts))


def _closure(tokens: tuple[str | None, ...], state: _State) -> list[_State]:
    """The state, plus the one after the field when inside it (a field ends after any character)."""
    i, inside = state
    return [state, (i + 1, False)] if inside else [state]


def _step(tokens: tuple[str | None, ...], state: _State, ch: str) -> _State | None:
    i, inside = state
    if inside:
        return state if ch in ID_CHARS else None
    if i >= len(tokens):
        return None
    tok = tokens[i]
    if tok is None:
        return (i, True) if ch in ID_CHARS else None
    return (i + 1, False) if tok == ch else None


def _next_chars(tokens: tuple[str | None, ...], state: _State) -> set[str]:
    i, inside = state
    tok = tokens[i] if not inside and i < len(tokens) else None
    return set() if tok is None else {tok}


def may_collide(a: PathTemplate, b: PathTemplate) -> bool:
    """True when some stream ids make `a` and `b` render the same text (pass `absolute()` templates).

    Depth-first search over pairs of positions; the characters worth trying are the literals either side
    expects next and one id character ("a": any serves where both sides read an id)."""
    ta, tb = a.tokens(), b.tokens()
    seen: set[tuple[_State, _State]] = set()
    todo: list[tuple[_State, _State]] = [((0, False), (0, False))]
    while todo:
        pair = todo.pop()
        if pair in seen:
            continue
        seen.add(pair)
        for sa in _closure(ta, pair[0]):
            for sb in _closure(tb, pair[1]):
                if sa == (len(ta), False) and sb == (len(tb), False):
                    return True
                for ch in _next_chars(ta, sa) | _next_chars(tb, sb) | {"a"}:
                    na, nb = _step(ta, sa, ch), _step(tb, sb, ch)
                    if na is not None and nb is not None:
                        todo.append((na, nb))
    return False
