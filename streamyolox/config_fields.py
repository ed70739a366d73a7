"""Field conventions of the config dataclasses (stage Configs, ModelSpec, MetricsSpec), in field metadata.

Ranges are declared once, checked in `__post_init__` and listed by `streamyolox stages`, so the CLI, Python
users and the docs see the same rule:

    @dataclass
    class NmsConfig(StageConfig):
        iou_threshold: float = ranged(0.45, ge=0, le=1)

`StageConfig.__post_init__` calls `check_ranges`; a value outside its range raises `OptionError`
(`iou_threshold: expected a number in [0, 1], got 7`), which the pipeline loader turns into
`stages.post.iou_threshold: ...`. None (an optional field left unset) is never checked. Sequences are
checked item by item (`classes[1]: expected an int >= 0, got -1`).

`output_path(default)` marks a field naming a file the stage writes: the pre-start checks
(`streamyolox.graph.preflight`) make sure it is writable, that no two sinks write it and that it is no
input. `RESOLVED_KEY` marks a field the loader fills in itself (not a YAML option).

Hand-written rather than pydantic's `Field(ge=...)`: the configs are plain dataclasses that the spec loader
builds with its own type checks and one-line errors, and pydantic would be a second validation system.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any

RANGE_KEY = "streamyolox.range"
# Metadata of a field the pipeline loader fills in itself (not a YAML option), e.g. ModelSpec.class_names.
RESOLVED_KEY = "streamyolox.resolved"
OUTPUT_KEY = "streamyolox.output_path"


class OptionError(ValueError):
    """One option's value is unusable: `str()` is `option: reason`; `option` names the field (`batch`,
    `classes[2]`)."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Range:
    """Bounds of a number: `ge`/`gt` below, `le`/`lt` above (None: unbounded on that side)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, value: float) -> bool:
        return not ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                    or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))

    def describe(self) -> str:
        """`in [0, 1]`, `in (0, 1]`, `>= 1`, `> 0`, `<= 10`."""
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            left, right = "[" if self.ge is not None else "(", "]" if self.le is not None else ")"
            return f"in {left}{_num(low)}, {_num(high)}{right}"
        if low is not None:
            return f"{'>=' if self.ge is not None else '>'} {_num(low)}"
        if high is not None:
            return f"{'<=' if self.le is not None else '<'} {_num(high)}"
        return "any"


def ranged(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None) -> Any:
    """A dataclass field with `default` whose value (or each item, for a sequence) must lie in the range."""
    return dataclasses.field(default=default, metadata={RANGE_KEY: Range(ge, gt, le, lt)})


def output_path(default: str | None) -> Any:
    """A dataclass field naming a file the stage writes (`-` is stdout; `{stream}` may stand in it)."""
    return dataclasses.field(default=default, metadata={OUTPUT_KEY: True})


def field_range(f: dataclasses.Field[Any]) -> Range | None:
    """The range declared on a dataclass field, or None."""
    found = f.metadata.get(RANGE_KEY)
    return found if isinstance(found, Range) else None


@functools.lru_cache(maxsize=256)
def _integer_fields(cls: type) -> frozenset[str]:
    """Fields whose declared type is int (alone, optional, or the items of a sequence)."""
    hints = typing.get_type_hints(cls)
    out = set()
    for name, tp in hints.items():
        args = {a for a in (typing.get_args(tp) or (tp,)) if a is not type(None)}
        flat = {b for a in args for b in (typing.get_args(a) or (a,)) if b is not Ellipsis}
        if flat == {int}:
            out.add(name)
    return frozenset(out)


def expected(rng: Range, integer: bool, optional: bool = False) -> str:
    """`an int >= 1`, `a number in [0, 1] or null`: what the messages and `streamyolox stages` say."""
    return f"{'an int' if integer else 'a number'} {rng.describe()}{' or null' if optional else ''}"


def check_ranges(obj: Any) -> None:
    """Raise `OptionError` for the first field of dataclass `obj` outside its declared range."""
    cls: Any = type(obj)  # a dataclass type (hashable: the lru_cache key)
    integers = _integer_fields(cls)
    for f in dataclasses.fields(obj):
        rng = field_range(f)
        value = getattr(obj, f.name)
        if rng is None or value is None:
            continue
        items = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for index, item in items:
            ok = isinstance(item, (int, float)) and not isinstance(item, bool) and rng.contains(item)
            if not ok:
                option = f.name if index is None else f"{f.name}[{index}]"
                shown = _num(item) if isinstance(item, (int, float)) else repr(item)
                raise OptionError(option, f"expected {expected(rng, f.name in integers)}, got {shown}")
