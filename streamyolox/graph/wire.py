"""The messages that cross a socket edge (`ipc` or `tcp`, `streamyolox.graph.wiring`), typed, and how they
are encoded and decoded: the one place that knows the wire format.

Producer -> consumer: `Data` (a packet: its header, the arrays in a shared-memory slot or as extra frames),
`Marker` (a replica's input that gave no output), `EndOfStream`, `Probe` (a restarted producer asks first).
Consumer -> producer: `Credit` (a slot released), `Hello` (a restarted consumer announces itself), `Resume`
(the answer to a probe: the consumer's incarnation and the last frame it received of each stream). What
each end does with them: `streamyolox.graph.transport` (producer) and `streamyolox.graph.inbox` (consumer).

On the wire a message is a pickled tuple, its code first, then its fields in order (`("C", 1, 4)`): as
small as a message can be with pickle, which the edges use anyway for the packet headers (`Packet` minus
its arrays). Both ends are this package, in one run.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import zmq

from streamyolox.graph import shm
from streamyolox.stages.packet import Packet

ARRAY_FIELDS = ("frame", "image", "raw")
Tag = tuple[int, int, bool]  # (epoch, seq, last): see streamyolox.graph.replicas
Desc = tuple[str, str, tuple[int, ...], int]  # (field, dtype, shape, offset in the slot | frame index)


@dataclass(frozen=True)
class Data:
    consumer_inc: int  # the consumer incarnation it is meant for (another one answers `Hello`)
    producer_inc: int
    slot: int  # the producer's credit it holds until a `Credit` gives it back
    segment: str | None  # the shared-memory slot's name (ipc); None: the arrays are the next frames (tcp)
    descs: tuple[Desc, ...]
    stub: Packet  # the packet without its arrays
    tag: Tag | None  # its order around replicated stages (None elsewhere)
    code: ClassVar[str] = "D"


@dataclass(frozen=True)
class Marker:
    tag: Tag
    code: ClassVar[str] = "S"


@dataclass(frozen=True)
class EndOfStream:
    code: ClassVar[str] = "E"


@dataclass(frozen=True)
class Probe:
    producer_inc: int
    code: ClassVar[str] = "P"


@dataclass(frozen=True)
class Credit:
    producer_inc: int
    slot: int
    code: ClassVar[str] = "C"


@dataclass(frozen=True)
class Hello:
    consumer_inc: int
    code: ClassVar[str] = "H"


@dataclass(frozen=True)
class Resume:
    producer_inc: int
    consumer_inc: int
    last_frames: dict[str, int]  # stream -> the last frame received (a resumed file source skips up to it)
    code: ClassVar[str] = "R"


Message = Data | Marker | EndOfStream | Probe | Credit | Hello | Resume
_TYPES: dict[str, Any] = {t.code: t for t in (Data, Marker, EndOfStream, Probe, Credit, Hello, Resume)}
_FIELDS = {t: tuple(f.name for f in dataclasses.fields(t)) for t in _TYPES.values()}


def encode(msg: Message) -> bytes:
    # the fields by name, not dataclasses.astuple: that deep-copies, the packet stub included
    return pickle.dumps((msg.code, *(getattr(msg, f) for f in _FIELDS[type(msg)])), protocol=5)


def decode(buf: Any) -> Message:
    """The message in `buf` (bytes or a buffer); KeyError for a code this version does not know."""
    code, *fields = pickle.loads(buf)
    return _TYPES[code](*fields)  # type: ignore[no-any-return]


# -- packets: the header as `Data`, the arrays beside it ---------------------------------------------------
def to_host(value: Any) -> np.ndarray:
    """A numpy array from numpy, torch (any device) or CuPy arrays (crossing a process means host memory)."""
    if isinstance(value, np.ndarray):
        return value
    module = type(value).__module__
    if module.startswith("torch"):
        return value.detach().cpu().numpy()
    if module.startswith("cupy"):
        return value.get()
    return np.asarray(value)


def split_packet(packet: Packet) -> tuple[Packet, list[tuple[str, np.ndarray]]]:
    """(the packet without its arrays, [(field, host array)])."""
    arrays = [(f, to_host(getattr(packet, f))) for f in ARRAY_FIELDS if getattr(packet, f) is not None]
    empty: dict[str, Any] = {f: None for f, _ in arrays}
    stub = dataclasses.replace(packet, **empty) if arrays else packet
    return stub, arrays


def tcp_frames(head: Data, arrays: list[tuple[str, np.ndarray]]) -> list[Any]:
    """A tcp message: the header, then each array as a frame of its own (sent zero-copy)."""
    arrays = [(f, np.ascontiguousarray(a)) for f, a in arrays]
    descs = tuple((f, a.dtype.str, a.shape, i + 1) for i, (f, a) in enumerate(arrays))
    header = encode(dataclasses.replace(head, segment=None, descs=descs))
    return [header, *(a.reshape(-1).view(np.uint8).data for _, a in arrays)]


def slot_bytes(arrays: list[tuple[str, np.ndarray]]) -> int:
    return sum(shm.aligned(a.nbytes) for _, a in arrays)


def write_slot(buf: Any, arrays: list[tuple[str, np.ndarray]]) -> tuple[Desc, ...]:
    """Copy the arrays into a shared-memory slot (`slot_bytes` long); their descriptors for `Data`."""
    descs, offset = [], 0
    for f, a in arrays:
        np.copyto(np.ndarray(a.shape, a.dtype, buffer=buf, offset=offset), a, casting="no")
        descs.append((f, a.dtype.str, a.shape, offset))
        offset += shm.aligned(a.nbytes)
    return tuple(descs)


def receive(frames: list[zmq.Frame], cache: SegmentCache) -> tuple[Message, Packet | None]:
    """Consumer side: (the message, for `Data` its packet whose arrays are views into the slot or the
    message's frames)."""
    msg = decode(frames[0].buffer)
    if not isinstance(msg, Data):
        return msg, None
    fields: dict[str, Any] = {}
    if msg.segment is None:
        for f, dtype, shape, i in msg.descs:
            fields[f] = np.frombuffer(frames[i].buffer, dtype=dtype).reshape(shape)
    else:
        buf = cache.get(msg.segment, (msg.producer_inc, msg.slot)).buf
        for f, dtype, shape, offset in msg.descs:
            fields[f] = np.ndarray(shape, dtype, buffer=buf, offset=offset)
    return msg, (dataclasses.replace(msg.stub, **fields) if fields else msg.stub)


class SegmentCache:
    """Consumer-side mappings of one edge's slots, re-mapped when a producer grows a slot."""

    def __init__(self) -> None:
        self.by_slot: dict[tuple[int, int], shm.Segment] = {}

    def get(self, name: str, key: tuple[int, int]) -> shm.Segment:
        seg = self.by_slot.get(key)
        if seg is None or seg.name != name:
            if seg is not None:
                seg.close()
            seg = self.by_slot[key] = shm.Segment(name)
        return seg

    def close(self) -> None:
        for seg in self.by_slot.values():
            seg.close()
        self.by_slot.clear()
