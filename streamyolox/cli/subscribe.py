"""`streamyolox subscribe ENDPOINT`: read what a `zmq` sink publishes.

Prints each message as one JSON line (msgpack payloads converted), or with `--table` a live table of
detections per stream and class. Frame-index gaps (messages this subscriber missed or frames skipped
upstream) are counted and reported at the end on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("subscribe", help="print the detections a zmq sink publishes")
    p.add_argument("endpoint", help="publisher address, e.g. tcp://127.0.0.1:5556 or ipc:///tmp/dets")
    p.add_argument("--topic", action="append", default=None, metavar="STREAM",
                   help="only this stream id (repeatable; default: all)")
    p.add_argument("--table", action="store_true", help="live table of detections per class")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N messages")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="exit when no message arrives for S seconds")
    p.add_argument("--format", choices=("auto", "json", "msgpack"), default="auto", help="payload encoding")
    p.add_argument("--bind", action="store_true", help="bind ENDPOINT (the publisher connects, mode: connect)")
    p.add_argument("--curve-server-key", default=None, metavar="FILE",
                   help="the publisher's public key file (.key): enables CURVE")
    p.add_argument("--curve-client-key", default=None, metavar="FILE",
                   help="this subscriber's key pair (.key_secret), allowed by the publisher")
    p.set_defaults(func=run_subscribe)


def decode_payload(payload: bytes, fmt: str = "auto") -> dict[str, Any]:
    """A message payload as a dict; `auto` tells JSON (starts with `{`) from msgpack."""
    if fmt == "json" or (fmt == "auto" and payload[:1] == b"{"):
        return json.loads(payload)
    import msgpack

    return msgpack.unpackb(payload, raw=False)


def open_subscriber(ctx: zmq.Context, endpoint: str, topics: list[str] | None = None, bind: bool = False,
                    curve_server_key: str | None = None, curve_client_key: str | None = None) -> zmq.Socket:
    """A SUB socket on `endpoint` subscribed to `topics` (all when None), with CURVE when keys are given."""
    import zmq.auth

    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if (curve_server_key is None) != (curve_client_key is None):
        sock.close()
        raise ValueError("--curve-server-key and --curve-client-key go together")
    if curve_server_key is not None and curve_client_key is not None:
        server_public, _ = zmq.auth.load_certificate(curve_server_key)
        public, secret = zmq.auth.load_certificate(curve_client_key)
        if not secret:
            sock.close()
            raise ValueError(f"--curve-client-key: {curve_client_key} holds no secret key (.key_secret)")
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_public, public, secret
    for topic in topics or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    try:
        (sock.bind if bind else sock.connect)(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise ValueError(f"cannot {'bind' if bind else 'connect'} {endpoint!r}: {exc}") from exc
    return sock


def messages(sock: zmq.Socket, topics: list[str] | None = None, timeout_s: float | None = None,
             fmt: str = "auto") -> Iterator[tuple[str, dict[str, Any], bytes | None]]:
    """(topic, record, JPEG thumbnail or None) per message; stops after `timeout_s` of silence.

    Topics match exactly (ZeroMQ's own filter is a prefix match: `cam1` would also get `cam10`).
    """
    wanted = set(topics) if topics else None
    while True:
        if not sock.poll(None if timeout_s is None else int(timeout_s * 1000)):
            return
        parts = sock.recv_multipart()
        topic = parts[0].decode(errors="replace")
        if len(parts) < 2 or (wanted is not None and topic not in wanted):
            continue
        yield topic, decode_payload(parts[1], fmt), parts[2] if len(parts) > 2 else None


@dataclass
class Tally:
    """Running counts: messages, frame-index gaps per stream, detections per (stream, class)."""

    messages: int = 0
    gaps: int = 0
    started: float = field(default_factory=time.monotonic)
    last_frame: dict[str, int] = field(default_factory=dict)
    frames: Counter = field(default_factory=Counter)
    totals: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latest: dict[str, Counter] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> None:
        stream, frame = str(record.get("stream")), int(record.get("frame", 0))
        last = self.last_frame.get(stream)
        if last is not None and frame > last + 1:
            self.gaps += frame - last - 1
        self.last_frame[stream] = frame
        self.messages += 1
        self.frames[stream] += 1
        now = Counter(d.get("class_name", str(d.get("class_id"))) for d in record.get("detections", []))
        self.latest[stream] = now
        self.totals[stream].update(now)

    def table(self) -> Any:
        from rich.table import Table

        rate = self.messages / max(time.monotonic() - self.started, 1e-9)
        table = Table(title=f"{self.messages} messages, {rate:.1f}/s, {self.gaps} frames missed")
        for name in ("stream", "class", "now", "per frame", "total"):
            table.add_column(name, justify="left" if name in ("stream", "class") else "right")
        for stream in sorted(self.totals):
            for cls, total in self.totals[stream].most_common():
                table.add_row(stream, cls, str(self.latest[stream][cls]),
                              f"{total / self.frames[stream]:.2f}", str(total))
        return table


def _consume(stream: Iterator[tuple[str, dict[str, Any], bytes | None]], tally: Tally, count: int | None,
             table: bool) -> None:
    if not table:
        for _, record, _ in stream:
            tally.add(record)
            print(json.dumps(record), flush=True)
            if count is not None and tally.messages >= count:
                return
        return
    from rich.live import Live

    with Live(tally.table(), refresh_per_second=4) as live:
        for _, record, _ in stream:
            tally.add(record)
            live.update(tally.table())
            if count is not None and tally.messages >= count:
                return


def run_subscribe(args: argparse.Namespace) -> int:
    ctx = zmq.Context()
    tally = Tally()
    try:
        sock = open_subscriber(ctx, args.endpoint, args.topic, args.bind, args.curve_server_key,
                               args.curve_client_key)
        try:
            _consume(messages(sock, args.topic, args.timeout, args.format), tally, args.count, args.table)
        except KeyboardInterrupt:
            pass  # Ctrl-C is the normal way to stop watching
        finally:
            sock.close(0)
    except (ValueError, OSError) as exc:
        print(f"streamyolox subscribe: {exc}", file=sys.stderr)
        return 1
    finally:
        ctx.term()
    print(f"streamyolox subscribe: {tally.messages} messages, {tally.gaps} frames missed", file=sys.stderr)
    if args.count is not None and tally.messages < args.count:
        return 1  # --timeout ended it before --count messages came
    return 0
