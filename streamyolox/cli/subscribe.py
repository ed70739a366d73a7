"""`streamyolox subscribe ENDPOINT`: read what a `zmq` sink publishes.

Prints each message as one JSON line (msgpack payloads converted), or with `--table` a live table of
detections per stream and class. Frame-index gaps (messages this subscriber missed or frames skipped
upstream) are counted and reported at the end on stderr.

Behind a `count` stage the sink also publishes each line crossing and zone enter/exit on topic
`events/<stream>` (subscribed with its stream under `--topic`; `--no-events` leaves them out). Events are
counted apart from frames (`--count` counts frames), printed as JSON lines like the frames (they carry
`event_id` and `kind`), or with `--table` as a table of totals per line and zone with the latest events in
words (`cam1 frame 120: person #7 crossed door (in)`); the end summary gives the totals per stream.
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

EVENTS_PREFIX = "events/"  # the zmq sink's event topics: events/<stream>
LATEST_EVENTS = 5  # events shown in words under the table


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("subscribe", help="print the detections a zmq sink publishes")
    p.add_argument("endpoint", help="publisher address, e.g. tcp://127.0.0.1:5556 or ipc:///tmp/dets")
    p.add_argument("--topic", action="append", default=None, metavar="STREAM",
                   help="only this stream id (repeatable; default: all)")
    p.add_argument("--table", action="store_true", help="live table of detections per class")
    p.add_argument("--count", type=int, default=None, metavar="N", help="exit after N frame messages")
    p.add_argument("--no-events", dest="events", action="store_false",
                   help="leave out the events/<stream> messages of a count stage")
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


def subscription_topics(streams: list[str] | None, events: bool = True) -> list[str] | None:
    """The topics to subscribe to for `--topic` streams (None: all): each stream's frames and, with
    `events`, its `events/<stream>` topic."""
    if not streams:
        return None
    return [*streams, *(f"{EVENTS_PREFIX}{s}" for s in streams if events)]


def is_event_topic(topic: str) -> bool:
    return topic.startswith(EVENTS_PREFIX)


def messages(sock: zmq.Socket, topics: list[str] | None = None, timeout_s: float | None = None,
             fmt: str = "auto", events: bool = True) -> Iterator[tuple[str, dict[str, Any], bytes | None]]:
    """(topic, record, JPEG thumbnail or None) per message; stops after `timeout_s` of silence.

    Topics match exactly (ZeroMQ's own filter is a prefix match: `cam1` would also get `cam10`);
    `events` False drops the `events/<stream>` messages.
    """
    wanted = set(topics) if topics else None
    while True:
        if not sock.poll(None if timeout_s is None else int(timeout_s * 1000)):
            return
        parts = sock.recv_multipart()
        topic = parts[0].decode(errors="replace")
        if len(parts) < 2 or (wanted is not None and topic not in wanted):
            continue
        if not events and is_event_topic(topic):
            continue
        yield topic, decode_payload(parts[1], fmt), parts[2] if len(parts) > 2 else None


def describe_event(event: dict[str, Any]) -> str:
    """An event in words: `cam1 frame 120: person #7 crossed door (in)`, `... left bay after 3.2 s`."""
    who = f"{event.get('class_name', 'object')} #{event.get('track_id')}"
    kind, where = event.get("kind", ""), event.get("line") or event.get("zone")
    if kind in ("line_in", "line_out"):
        what = f"crossed {where} ({kind[5:]})"
    elif kind == "zone_enter":
        what = f"entered {where}"
    elif kind == "zone_exit":
        what = f"left {where}" + (f" after {event['dwell_s']:.1f} s" if event.get("dwell_s") is not None else "")
    else:
        what = f"{kind} {where}"
    return f"{event.get('stream')} frame {event.get('frame')}: {who} {what}"


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
    events: int = 0
    # (stream, line or zone) -> kind -> events; bounded by the pipeline's streams x lines/zones
    event_totals: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    recent: list[str] = field(default_factory=list)

    def take(self, topic: str, record: dict[str, Any]) -> None:
        """Count one message: an event (topic events/<stream>) or a frame."""
        if is_event_topic(topic):
            self.add_event(record)
        else:
            self.add(record)

    def add_event(self, event: dict[str, Any]) -> None:
        """Count one events/<stream> message (not a frame: no gap accounting)."""
        self.events += 1
        where = str(event.get("line") or event.get("zone"))
        self.event_totals[(str(event.get("stream")), where)][str(event.get("kind"))] += 1
        self.recent = [*self.recent[-(LATEST_EVENTS - 1):], describe_event(event)]

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
        if not self.events:
            return table
        from rich.console import Group

        events = Table(title=f"{self.events} events")
        for name in ("stream", "line/zone", "in", "out", "enter", "exit"):
            events.add_column(name, justify="left" if name in ("stream", "line/zone") else "right")
        for (stream, where), kinds in sorted(self.event_totals.items()):
            events.add_row(stream, where, *(str(kinds[k]) for k in ("line_in", "line_out", "zone_enter", "zone_exit")))
        return Group(table, events, *self.recent)

    def summary(self) -> str:
        """The end-of-run line: messages, gaps, events per stream and line/zone."""
        text = f"{self.messages} messages, {self.gaps} frames missed"
        if self.events:
            parts = [f"{stream} {where} " + " ".join(f"{k.split('_')[1]} {n}" for k, n in sorted(kinds.items()))
                     for (stream, where), kinds in sorted(self.event_totals.items())]
            text += f", {self.events} events ({'; '.join(parts)})"
        return text


def _consume(stream: Iterator[tuple[str, dict[str, Any], bytes | None]], tally: Tally, count: int | None,
             table: bool) -> None:
    if not table:
        for topic, record, _ in stream:
            tally.take(topic, record)
            print(json.dumps(record), flush=True)
            if count is not None and tally.messages >= count:
                return
        return
    from rich.live import Live

    with Live(tally.table(), refresh_per_second=4) as live:
        for topic, record, _ in stream:
            tally.take(topic, record)
            live.update(tally.table())
            if count is not None and tally.messages >= count:
                return


def run_subscribe(args: argparse.Namespace) -> int:
    ctx = zmq.Context()
    tally = Tally()
    try:
        topics = subscription_topics(args.topic, args.events)
        sock = open_subscriber(ctx, args.endpoint, topics, args.bind, args.curve_server_key, args.curve_client_key)
        try:
            _consume(messages(sock, topics, args.timeout, args.format, args.events), tally, args.count, args.table)
        except KeyboardInterrupt:
            pass  # Ctrl-C is the normal way to stop watching
        finally:
            sock.close(0)
    except (ValueError, OSError) as exc:
        print(f"streamyolox subscribe: {exc}", file=sys.stderr)
        return 1
    finally:
        ctx.term()
    print(f"streamyolox subscribe: {tally.summary()}", file=sys.stderr)
    if args.count is not None and tally.messages < args.count:
        return 1  # --timeout ended it before --count messages came
    return 0
