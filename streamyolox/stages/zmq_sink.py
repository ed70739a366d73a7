"""`zmq` sink: one message per frame on a ZeroMQ PUB socket, for any number of subscribers.

Message: multipart ``[topic, payload]`` (+ ``[jpeg]`` with `thumbnail: true`); topic = stream id, so a
subscriber filters per camera; payload = the json sink's record plus ``"schema_version": 1``, as JSON or
msgpack (schema: ``streamyolox/schemas/detections_message.json``). Behind a `count` stage, each event is
also one message ``[b"events/<stream>", event + schema_version]`` (`$defs/event` of that schema), sent
before the frame's own message (a count stage's end-of-stream packet sends its events only). Sends
never wait: a subscriber that falls behind loses messages at its high-water mark, never slowing the
pipeline. Binds to loopback unless `allow_remote: true`; across a network, CURVE encrypts and only the
allowed client keys can subscribe.

Example YAML::

    zmq:
      kind: zmq
      inputs: [nms]
      endpoint: tcp://0.0.0.0:5556
      allow_remote: true
      curve_server_secret_key: keys/server.key_secret   # from `streamyolox keys keys --name server`
      curve_allowed_clients: keys/clients                # the clients' *.key public key files
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import msgpack
import numpy as np
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from streamyolox.analytics.events import add_analytics, is_end_of_stream
from streamyolox.config_fields import OptionError, ranged
from streamyolox.detections import Detections, frame_record
from streamyolox.draw import annotate
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet

SCHEMA_VERSION = 1
EVENTS_TOPIC_PREFIX = "events/"  # + stream id: the topic of each line/zone event (see analytics.events)
_LOOPBACK_NAMES = ("localhost", "lo", "lo0")


@dataclass
class ZmqSinkConfig(StageConfig):
    """Options of the `zmq` sink.

    endpoint: tcp://HOST:PORT or ipc://PATH. mode: bind (subscribers connect) or connect (to a broker).
    format: payload encoding, json or msgpack. topic: fixed topic (default: each frame's stream id).
    thumbnail / thumbnail_width / thumbnail_quality / thumbnail_annotate: optional JPEG part.
    hwm: messages queued per subscriber before its messages are dropped.
    nodrop: a full subscriber queue drops the frame for every subscriber and counts it in `dropped`
        (exact drop accounting, suits one subscriber); default: each subscriber loses only its own.
    allow_remote: permit a non-loopback tcp endpoint. curve_server_secret_key: this publisher's
        `.key_secret` file; curve_allowed_clients: folder of the allowed clients' public `.key` files.
    wait_subscribers / wait_timeout_s: at open, wait for that many subscriptions (ZeroMQ delivers
        nothing to a subscriber before its subscription arrives).
    linger_ms: at close, how long queued messages may still take to leave.
    """

    endpoint: str = "tcp://127.0.0.1:5556"
    mode: Literal["bind", "connect"] = "bind"
    format: Literal["json", "msgpack"] = "json"
    topic: str | None = None
    thumbnail: bool = False
    thumbnail_width: int = ranged(320, ge=8)
    thumbnail_quality: int = ranged(80, ge=1, le=100)
    thumbnail_annotate: bool = True
    hwm: int = ranged(100, ge=1)
    nodrop: bool = False
    allow_remote: bool = False
    curve_server_secret_key: str | None = None
    curve_allowed_clients: str | None = None
    wait_subscribers: int = ranged(0, ge=0)
    wait_timeout_s: float = ranged(5.0, gt=0)
    linger_ms: int = ranged(1000, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        scheme, _, address = self.endpoint.partition("://")
        host, _, port = address.rpartition(":")
        # bind also takes `*` (any free port); a connect needs a real one
        any_port = port == "*" and self.mode == "bind"
        if scheme not in ("tcp", "ipc") or not address:
            raise OptionError("endpoint", f"expected tcp://HOST:PORT or ipc://PATH, got {self.endpoint!r}")
        if scheme == "tcp" and not (host and ((port.isdigit() and 1 <= int(port) <= 65535) or any_port)):
            raise OptionError("endpoint", f"expected tcp://HOST:PORT with PORT in [1, 65535], got {self.endpoint!r}")
        self._check_security()

    def _check_security(self) -> None:
        """Loopback unless allowed; CURVE's two key options together (mode and format: their Literal
        types, checked by the loader; the ranges: `ranged`)."""
        if not is_loopback_endpoint(self.endpoint) and not self.allow_remote:
            raise OptionError("endpoint", f"{self.endpoint!r} is reachable from other hosts; use "
                                          "tcp://127.0.0.1:PORT, or set allow_remote: true (with CURVE keys)")
        if (self.curve_server_secret_key is None) != (self.curve_allowed_clients is None):
            missing = "curve_allowed_clients" if self.curve_allowed_clients is None else "curve_server_secret_key"
            raise OptionError(missing, "curve_server_secret_key and curve_allowed_clients go together")
        if self.curve_allowed_clients is not None and not Path(self.curve_allowed_clients).is_dir():
            raise OptionError("curve_allowed_clients", f"{self.curve_allowed_clients!r} is not a folder")


def message_schema() -> dict[str, Any]:
    """The JSON Schema of one message payload (shipped in the package)."""
    text = resources.files("streamyolox").joinpath("schemas/detections_message.json").read_text("utf-8")
    return json.loads(text)


def event_schema() -> dict[str, Any]:
    """The JSON Schema of an `events/<stream>` message payload (`$defs/event` of the same file)."""
    schema = message_schema()
    return {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/event"}


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ipc:// and for tcp:// on 127.0.0.0/8, ::1, localhost or the loopback interface."""
    scheme, _, address = endpoint.partition("://")
    if scheme == "ipc":
        return True
    host = address.rpartition(";")[2].rpartition(":")[0].strip("[]")
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface or host name: reachable from elsewhere
        return False


def load_server_key(path: str) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a `zmq.auth` `.key_secret` file; one-line error otherwise."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"zmq.curve_server_secret_key: cannot read {path!r}: {exc}") from exc
    if not secret:
        raise ValueError(f"zmq.curve_server_secret_key: {path!r} holds no secret key (give the .key_secret file)")
    return public, secret


def encode_payload(record: dict[str, Any], fmt: str) -> bytes:
    """The message payload: `record` + schema_version, as compact JSON (UTF-8) or msgpack."""
    body = {**record, "schema_version": SCHEMA_VERSION}
    if fmt == "msgpack":
        return msgpack.packb(body, use_bin_type=True)
    return json.dumps(body, separators=(",", ":")).encode()


def jpeg_thumbnail(frame: np.ndarray, detections: Detections | None, width: int, quality: int,
                   draw: bool) -> bytes:
    """JPEG of `frame` (ndarray[H, W, 3] uint8 BGR) scaled to `width`, boxes drawn at thumbnail size."""
    h, w = frame.shape[:2]
    scale = min(1.0, width / w)
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if draw and detections is not None and len(detections):
        scaled = Detections(detections.xyxy * scale, detections.scores, detections.class_ids,
                            detections.track_ids, detections.class_names)
        small = annotate(small, scaled, copy=False)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("zmq sink: JPEG encoding of the thumbnail failed")
    return buf.tobytes()


class ZmqSink(Stage):
    """Publishes each frame's detections (and optionally a thumbnail) on a ZeroMQ PUB socket."""

    kind: ClassVar[str] = "zmq"
    Config: ClassVar[type[StageConfig]] = ZmqSinkConfig
    is_sink: ClassVar[bool] = True
    description: ClassVar[str] = "publish detections over ZeroMQ PUB (JSON/msgpack, optional JPEG, CURVE)"

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self._zctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._auth: ThreadAuthenticator | None = None

    def open(self) -> None:
        cfg: ZmqSinkConfig = self.config
        # A context of our own: the ZAP authenticator applies per context, never to the runtime's sockets.
        self._zctx = zmq.Context()
        try:
            self._sock = self._make_socket(cfg)
            self._wait_for_subscribers(cfg)
        except Exception:
            self.close()
            raise

    def _make_socket(self, cfg: ZmqSinkConfig) -> zmq.Socket:
        assert self._zctx is not None
        # XPUB: a PUB that also reports subscriptions (to wait for them) and supports NODROP.
        sock = self._zctx.socket(zmq.XPUB)
        try:
            self._configure(sock, cfg)
        except Exception:
            sock.close(0)
            raise
        return sock

    def _configure(self, sock: zmq.Socket, cfg: ZmqSinkConfig) -> None:
        sock.setsockopt(zmq.SNDHWM, cfg.hwm)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.XPUB_NODROP, int(cfg.nodrop))
        sock.setsockopt(zmq.LINGER, cfg.linger_ms)
        if cfg.curve_server_secret_key is not None:
            public, secret = load_server_key(cfg.curve_server_secret_key)
            self._auth = ThreadAuthenticator(self._zctx, log=self.ctx.log)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(cfg.curve_allowed_clients))
            sock.curve_server, sock.curve_publickey, sock.curve_secretkey = True, public, secret
        elif not is_loopback_endpoint(cfg.endpoint):
            self.ctx.log.warning("zmq sink: publishing unencrypted to %s; anyone on the network can "
                                 "subscribe (set curve_server_secret_key / curve_allowed_clients)", cfg.endpoint)
        try:
            (sock.bind if cfg.mode == "bind" else sock.connect)(cfg.endpoint)
        except zmq.ZMQError as exc:
            raise ValueError(f"zmq.endpoint: cannot {cfg.mode} {cfg.endpoint!r}: {exc}") from exc

    def _drain_subscriptions(self) -> int:
        """Read pending (un)subscription messages (keeps their queue short); returns new subscriptions."""
        assert self._sock is not None
        new = 0
        while self._sock.poll(0, zmq.POLLIN):
            msg = self._sock.recv(zmq.NOBLOCK)
            new += int(msg[:1] == b"\x01")
        return new

    def _wait_for_subscribers(self, cfg: ZmqSinkConfig) -> None:
        assert self._sock is not None
        seen, deadline = 0, time.monotonic() + cfg.wait_timeout_s
        while seen < cfg.wait_subscribers and time.monotonic() < deadline:
            if self._sock.poll(50, zmq.POLLIN):
                seen += self._drain_subscriptions()
            if self.ctx.should_stop():
                return
        if seen < cfg.wait_subscribers:
            self.ctx.log.warning("zmq sink: %d of %d subscribers after %.1f s; publishing anyway",
                                 seen, cfg.wait_subscribers, cfg.wait_timeout_s)

    def process(self, packet: Packet) -> list[Packet]:
        cfg: ZmqSinkConfig = self.config
        assert self._sock is not None, "zmq sink used before open()"
        self._drain_subscriptions()
        # each event also on its own topic, so a consumer of events alone need not parse frames; before
        # the frame's message, so a subscriber that stops at frame N has every event up to N
        event_topic = f"{EVENTS_TOPIC_PREFIX}{packet.meta.stream}".encode()
        for event in packet.events:
            self._send([event_topic, encode_payload(event.to_json(), cfg.format)], "events_sent", "events_dropped")
        if not is_end_of_stream(packet.meta.extra):  # a count stage's last events come without a frame
            self._send(self._frame_message(packet), "sent", "dropped")
        return []

    def _frame_message(self, packet: Packet) -> list[bytes]:
        cfg: ZmqSinkConfig = self.config
        topic = (cfg.topic if cfg.topic is not None else packet.meta.stream).encode()
        record = add_analytics(frame_record(packet.meta, packet.detections), packet.events, packet.counts)
        parts = [topic, encode_payload(record, cfg.format)]
        if cfg.thumbnail and packet.frame is not None:
            parts.append(jpeg_thumbnail(packet.frame, packet.detections, cfg.thumbnail_width,
                                        cfg.thumbnail_quality, cfg.thumbnail_annotate))
        return parts

    def _send(self, parts: list[bytes], sent: str, dropped: str) -> None:
        assert self._sock is not None
        try:
            self._sock.send_multipart(parts, flags=zmq.NOBLOCK)
            self.ctx.count(sent)
        except zmq.Again:  # nodrop and a subscriber's queue is full: drop rather than wait
            self.ctx.count(dropped)

    def close(self) -> list[Packet]:
        if self._sock is not None:
            self._sock.close()  # lingers up to linger_ms so queued messages still leave
            self._sock = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._zctx is not None:
            self._zctx.destroy(linger=0)  # any socket a failed open() left; ours already lingered
            self._zctx = None
        return []
