"""`mqtt` sink: detections (QoS 0) and events (QoS 1) to an MQTT broker through paho-mqtt 2.x.

Topics (templates, `{stream}` = the frame's stream id): `streamyolox/{stream}/detections` gets one message
per frame, the json sink's record plus ``"schema_version": 1`` (with `events` and `counts` behind a
`count` stage); `streamyolox/{stream}/events` gets one message per event (`Event.to_json()` plus
schema_version; `event_id` lets a consumer drop QoS 1 redeliveries).

The client runs in paho's network thread (`loop_start`), which reconnects on its own with exponential
backoff (`reconnect_min_s` .. `reconnect_max_s`). Events are kept by paho until the broker acknowledges
them (PUBACK) and sent again after a reconnect, so a broker that goes away and comes back loses no event
while at most `max_pending_events` are unacknowledged; an event beyond that is dropped and counted
(`events_dropped`). Detections are dropped while disconnected (`detections_dropped`): QoS 0, the next
frame replaces them. `close()` waits up to `close_timeout_s` for the pending events and reports what was
never acknowledged (`events_lost`).

Example YAML::

    mqtt:
      kind: mqtt
      inputs: [count]
      host: broker.local
      port: 8883
      tls: true
      ca_certs: certs/ca.pem
      username: streamyolox
      password: ${MQTT_PASSWORD}
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from streamyolox.analytics.events import Event, add_analytics, is_end_of_stream
from streamyolox.config_fields import OptionError, ranged
from streamyolox.detections import frame_record
from streamyolox.stages.base import Stage, StageConfig
from streamyolox.stages.packet import Packet
from streamyolox.stages.zmq_sink import encode_payload

_QUEUED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)  # QoS 1: kept for a (re)connect
_AUTH_REFUSALS = ("Not authorized", "Bad user name or password")


@dataclass
class MqttSinkConfig(StageConfig):
    """Options of the `mqtt` sink.

    host / port: the broker. client_id: default `streamyolox-<pipeline>-<stage>-<pid>`.
    detections_topic / events_topic: templates with `{stream}`; detections_topic null: no frame messages.
    username / password: broker login. tls: connect with TLS (ca_certs: CA file, default the system's;
        certfile / keyfile: a client certificate; tls_insecure: skip the host name check).
    keepalive_s: MQTT keepalive. reconnect_min_s / reconnect_max_s: the reconnect backoff (doubles).
    connect_timeout_s: how long open() waits for the first connection (then it carries on, buffering).
    max_pending_events: events kept until acknowledged (the buffer while the broker is away).
    max_pending_detections: detection messages written but not yet on the socket (more: dropped).
    close_timeout_s: how long close() waits for the pending events.
    """

    host: str = "127.0.0.1"
    port: int = ranged(1883, ge=1, le=65535)
    client_id: str | None = None
    detections_topic: str | None = "streamyolox/{stream}/detections"
    events_topic: str = "streamyolox/{stream}/events"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = ranged(30, ge=5)
    reconnect_min_s: int = ranged(1, ge=1)
    reconnect_max_s: int = ranged(30, ge=1)
    connect_timeout_s: float = ranged(5.0, ge=0)
    max_pending_events: int = ranged(10000, ge=1, le=60000)  # paho's message ids are 16 bits
    max_pending_detections: int = ranged(100, ge=1)
    close_timeout_s: float = ranged(5.0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.host.strip():
            raise OptionError("host", "expected a host name or address, got ''")
        for name in ("detections_topic", "events_topic"):
            check_topic(name, getattr(self, name))
        if self.password is not None and self.username is None:
            raise OptionError("password", "needs a username")
        if (self.certfile is None) != (self.keyfile is None):
            raise OptionError("certfile", "certfile and keyfile go together")
        for name in ("ca_certs", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None and not self.tls:
                raise OptionError(name, "needs tls: true")
            if value is not None and not Path(value).is_file():
                raise OptionError(name, f"no such file {value!r}")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise OptionError("reconnect_max_s", f"expected >= reconnect_min_s ({self.reconnect_min_s}), "
                                                 f"got {self.reconnect_max_s}")


def check_topic(option: str, template: str | None) -> None:
    """A topic template: non-empty, only `{stream}` as a field, no MQTT wildcards."""
    if template is None:
        if option == "events_topic":
            raise OptionError(option, "expected a topic template, got null")
        return
    try:
        topic = template.format(stream="s")
    except (KeyError, IndexError, ValueError) as exc:
        raise OptionError(option, f"only {{stream}} may appear in the template, got {template!r} ({exc})") from None
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise OptionError(option, f"expected a topic without wildcards (+, #), got {template!r}")


def topic_for(template: str, stream: str) -> str:
    # a stream id holding an MQTT wildcard would make the topic unpublishable
    return template.format(stream=stream.replace("+", "_").replace("#", "_"))


class _Ledger:
    """Message ids published and not yet acknowledged, shared with paho's network thread.

    `on_publish` may run before `publish()` has returned the id to us (the broker can be that fast), so
    an id acknowledged before it was recorded waits in `early` until it is; the lock is never held while
    calling paho (its callbacks run under paho's own lock: holding ours across `publish()` could
    deadlock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: OrderedDict[int, str] = OrderedDict()  # mid -> event_id
        self.detections: set[int] = set()
        self.early: set[int] = set()
        self.acked_events = 0

    def record(self, mid: int, event_id: str | None) -> None:
        with self.lock:
            if mid in self.early:
                self.early.discard(mid)
                self.acked_events += event_id is not None
            elif event_id is not None:
                self.events[mid] = event_id
            else:
                self.detections.add(mid)

    def acknowledge(self, mid: int) -> None:
        with self.lock:
            if self.events.pop(mid, None) is not None:
                self.acked_events += 1
            elif mid in self.detections:
                self.detections.discard(mid)
            else:
                self.early.add(mid)

    def connection_lost(self) -> int:
        """QoS 0 messages not yet written are gone with the connection; returns how many."""
        with self.lock:
            lost = len(self.detections)
            self.detections.clear()
            return lost


class MqttSink(Stage):
    """Publishes detections (QoS 0) and events (QoS 1) to an MQTT broker, buffering events across outages."""

    kind: ClassVar[str] = "mqtt"
    Config: ClassVar[type[StageConfig]] = MqttSinkConfig
    is_sink: ClassVar[bool] = True
    description: ClassVar[str] = "MQTT: detections (QoS 0) and events (QoS 1, kept across broker outages)"

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self._client: mqtt.Client | None = None
        self._ledger = _Ledger()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._disconnects = 0
        self._lost_detections = 0
        self._reported: dict[str, int] = {}

    def open(self) -> None:
        cfg: MqttSinkConfig = self.config
        client_id = cfg.client_id or f"streamyolox-{self.ctx.pipeline}-{self.ctx.stage_id}-{os.getpid()}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.max_queued_messages_set(cfg.max_pending_events)  # paho keeps only QoS > 0 ones: events
        client.max_inflight_messages_set(100)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set(ca_certs=cfg.ca_certs, certfile=cfg.certfile, keyfile=cfg.keyfile)
            client.tls_insecure_set(cfg.tls_insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        client.loop_start()
        self._client = client
        self._wait_first_connection(cfg)

    def _wait_first_connection(self, cfg: MqttSinkConfig) -> None:
        deadline = time.monotonic() + cfg.connect_timeout_s
        while not self._connected.wait(0.05) and time.monotonic() < deadline and self._refused is None:
            if self.ctx.should_stop():
                return
        if self._refused is not None and self._refused in _AUTH_REFUSALS:
            self.close()
            raise ValueError(f"mqtt.username: broker {cfg.host}:{cfg.port} refused the login: {self._refused}")
        if not self._connected.is_set():
            self.ctx.log.warning("mqtt sink: no connection to %s:%d after %.1f s (%s); buffering events and "
                                 "retrying", cfg.host, cfg.port, cfg.connect_timeout_s,
                                 self._refused or "no answer")

    # paho's network thread: keep these short, touch only the ledger and plain flags
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            return
        self._refused = None
        self._connected.set()
        self.ctx.log.info("mqtt sink: connected to %s:%d", self.config.host, self.config.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()  # first: the stage thread stops publishing detections
        if was_connected:
            self._disconnects += 1
            self.ctx.log.warning("mqtt sink: disconnected from %s:%d (%s); reconnecting", self.config.host,
                                 self.config.port, reason)
        self._lost_detections += self._ledger.connection_lost()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._ledger.acknowledge(mid)

    def process(self, packet: Packet) -> list[Packet]:
        cfg: MqttSinkConfig = self.config
        assert self._client is not None, "mqtt sink used before open()"
        stream = packet.meta.stream
        if cfg.detections_topic is not None and not is_end_of_stream(packet.meta.extra):
            record = add_analytics(frame_record(packet.meta, packet.detections), packet.events, packet.counts)
            self._publish_detections(topic_for(cfg.detections_topic, stream), encode_payload(record, "json"))
        for event in packet.events:
            self._publish_event(topic_for(cfg.events_topic, stream), event)
        self._report()
        return []

    def _publish_detections(self, topic: str, payload: bytes) -> None:
        assert self._client is not None
        with self._ledger.lock:
            backlog = len(self._ledger.detections)
        if not self._connected.is_set() or backlog >= self.config.max_pending_detections:
            self.ctx.count("detections_dropped")
            return
        info = self._client.publish(topic, payload, qos=0)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.ctx.count("detections_dropped")
            return
        self._ledger.record(info.mid, None)
        self.ctx.count("detections_sent")

    def _publish_event(self, topic: str, event: Event) -> None:
        assert self._client is not None
        info = self._client.publish(topic, encode_payload(event.to_json(), "json"), qos=1)
        if info.rc not in _QUEUED:  # the buffer is full (MQTT_ERR_QUEUE_SIZE): this event is lost
            self.ctx.count("events_dropped")
            if self.ctx.counters.get("events_dropped") == 1:
                self.ctx.log.warning("mqtt sink: %d events unacknowledged (max_pending_events); dropping %s "
                                     "and any further ones until the broker catches up",
                                     self.config.max_pending_events, event.event_id)
            return
        self._ledger.record(info.mid, event.event_id)

    def _report(self) -> None:
        """Move what the network thread saw into the stage counters (counters are the stage thread's)."""
        with self._ledger.lock:
            values = {"events_acked": self._ledger.acked_events, "events_pending": len(self._ledger.events)}
        values.update(disconnects=self._disconnects, detections_lost=self._lost_detections)
        for name, value in values.items():
            if name == "events_pending":
                self.ctx.set_value(name, value)
            elif value != self._reported.get(name, 0):
                self.ctx.count(name, value - self._reported.get(name, 0))
                self._reported[name] = value

    def close(self) -> list[Packet]:
        client, self._client = self._client, None
        if client is None:
            return []
        deadline = time.monotonic() + self.config.close_timeout_s
        while time.monotonic() < deadline:
            with self._ledger.lock:
                if not self._ledger.events:
                    break
            time.sleep(0.02)
        with self._ledger.lock:
            lost = list(self._ledger.events.values())
        self._report()
        if lost:
            self.ctx.count("events_lost", len(lost))
            self.ctx.log.warning("mqtt sink: %d events not acknowledged by %s:%d within close_timeout_s = %g s "
                                 "(lost): %s%s", len(lost), self.config.host, self.config.port,
                                 self.config.close_timeout_s, ", ".join(lost[:5]), " ..." if len(lost) > 5 else "")
        client.disconnect()
        client.loop_stop()
        return []
