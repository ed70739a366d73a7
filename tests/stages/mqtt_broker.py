"""A real mosquitto broker for tests: started, killed and restarted on 127.0.0.1, persistence off; and a
QoS 1 subscriber that records what arrives."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import free_endpoint


def free_port() -> int:
    return int(free_endpoint().rpartition(":")[2])


class Broker:
    """`mosquitto -c FILE` with a listener on 127.0.0.1:`port`; `extra` lines are added to the config
    (a bridge, TLS, a password file). The config file stays, so `start()` after `kill()` is a restart."""

    def __init__(self, workdir: Path, name: str, extra: str = "", anonymous: bool = True) -> None:
        if shutil.which("mosquitto") is None:
            pytest.skip("mosquitto not installed (apt-get install mosquitto; .ci/run installs it)")
        self.port = free_port()
        self.conf = workdir / f"{name}.conf"
        self.log = workdir / f"{name}.log"
        # `user root`: stay root when started as root, so the broker can read files under the test's tmp dir
        # `extra` follows the listener line: TLS options there apply to it; a bridge section may follow
        self.conf.write_text(f"user root\nallow_anonymous {str(anonymous).lower()}\npersistence false\n"
                             f"log_type all\nlistener {self.port} 127.0.0.1\n{extra}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> Broker:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto not listening on {self.port} after {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: the broker dies with whatever it held (persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class Subscriber:
    """A QoS 1 subscriber (clean_session False) on `topic`, re-subscribing on every connect; records
    (topic, qos, payload as JSON) in arrival order."""

    def __init__(self, port: int, topic: str = "streamyolox/#", ca_certs: str | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.messages: list[tuple[str, int, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}", clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        if ca_certs is not None:
            self.client.tls_set(ca_certs=ca_certs)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("test subscriber: no SUBACK")

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.qos, json.loads(msg.payload)))

    def received(self, topic_part: str = "") -> list[tuple[str, int, dict[str, Any]]]:
        with self.lock:
            return [m for m in self.messages if topic_part in m[0]]

    def wait_for(self, n: int, topic_part: str, timeout_s: float = 15.0) -> list[tuple[str, int, dict]]:
        """Wait until `n` distinct event ids (or messages, for detections) arrived on matching topics."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.received(topic_part)
            if len({m[2].get("event_id", i) for i, m in enumerate(got)}) >= n:
                return got
            time.sleep(0.05)
        return self.received(topic_part)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
