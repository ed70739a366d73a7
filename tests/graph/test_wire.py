"""The typed edge messages (`streamyolox.graph.wire`): the bytes on the wire are the pickled tuples the
edges always sent (code first, then the fields in order), decoding gives back equal typed messages, and a
`Data` message carries its arrays intact both as tcp frames and through a shared-memory slot."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import zmq

from streamyolox.detections import FrameMeta
from streamyolox.graph import shm, wire
from streamyolox.graph.wire import Credit, Data, EndOfStream, Hello, Marker, Probe, Resume
from streamyolox.stages.packet import Packet


@pytest.mark.parametrize(("msg", "as_tuple"), [
    (Credit(2, 5), ("C", 2, 5)),
    (Hello(3), ("H", 3)),
    (Resume(1, 4, {"cam": 17}), ("R", 1, 4, {"cam": 17})),
    (Probe(6), ("P", 6)),
    (Marker((1, 9, True)), ("S", (1, 9, True))),
    (EndOfStream(), ("E",)),
])
def test_messages_are_the_tuples_on_the_wire_and_decode_to_equal_messages(msg: wire.Message,
                                                                          as_tuple: tuple) -> None:
    raw = wire.encode(msg)
    assert pickle.loads(raw) == as_tuple  # the format peers of the same version read
    assert wire.decode(raw) == msg and type(wire.decode(raw)) is type(msg)
    assert wire.decode(pickle.dumps(as_tuple)) == msg


def test_an_unknown_code_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        wire.decode(pickle.dumps(("Z", 1)))


def _packet() -> tuple[Packet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 255, (30, 41, 3), dtype=np.uint8)
    raw = rng.standard_normal((3, 5)).astype(np.float32)
    return Packet(FrameMeta(stream="cam", frame=12, time=1.0), frame=frame, raw=raw, extra={"k": 1}), frame, raw


def test_data_over_tcp_frames_keeps_header_and_arrays() -> None:
    packet, frame, raw = _packet()
    stub, arrays = wire.split_packet(packet)
    frames = wire.tcp_frames(Data(3, 1, 2, None, (), stub, (0, 4, False)), arrays)
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a.bind("inproc://wire-test")
        b.connect("inproc://wire-test")
        a.send_multipart(frames, copy=False)
        msg, got = wire.receive(b.recv_multipart(copy=False), wire.SegmentCache())
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()
    assert isinstance(msg, Data) and (msg.consumer_inc, msg.producer_inc, msg.slot, msg.tag) == (3, 1, 2, (0, 4, False))
    assert got is not None and got.meta == packet.meta and got.extra == {"k": 1}
    np.testing.assert_array_equal(got.frame, frame)
    np.testing.assert_array_equal(got.raw, raw)


def test_data_through_a_shared_memory_slot_keeps_the_arrays() -> None:
    packet, frame, raw = _packet()
    stub, arrays = wire.split_packet(packet)
    name = f"syx-test-{os.getpid()}-wire"
    seg = shm.Segment(name, wire.slot_bytes(arrays), create=True)
    cache = wire.SegmentCache()
    try:
        descs = wire.write_slot(seg.buf, arrays)
        header = wire.encode(Data(0, 0, 1, name, descs, stub, None))
        msg, got = wire.receive([zmq.Frame(header)], cache)
        assert isinstance(msg, Data) and msg.segment == name and got is not None
        np.testing.assert_array_equal(got.frame, frame)
        np.testing.assert_array_equal(got.raw, raw)
        del got
    finally:
        cache.close()
        seg.close()
        seg.unlink()
    assert shm.leftovers(f"syx-test-{os.getpid()}-") == []
