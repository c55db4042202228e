"""Publishing simulated messages over MQTT (QoS 1), paced by a rate and/or a speed-up, with a
progress line on stderr.

Identities: ``service`` publishes everything with the service identity of ``endpoints.json``
(allowed on every ingest topic); ``per-identity`` opens one connection per engineer or device
with its own username and ``mqtt_password``, as real phones and devices do (CONTRACT section 3).
Messages of one identity are published in order on one connection, so they reach the broker in
order.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Outgoing(Protocol):
    ts: float
    identity: str
    topic: str
    payload: bytes


class PublishError(RuntimeError):
    """The broker refused a connection or did not acknowledge in time."""


@dataclass
class PublishStats:
    messages: int = 0
    acked: int = 0
    wall_s: float = 0.0
    sim_span_s: float = 0.0
    connections: int = 0
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def speedup(self) -> float:
        return self.sim_span_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "acked": self.acked,
            "wall_s": round(self.wall_s, 2),
            "rate_msgs_per_s": round(self.rate, 1),
            "effective_speedup": round(self.speedup, 1),
            "connections": self.connections,
            "refused": self.refused,
        }


class Progress:
    """A one-line progress bar on stderr (a line per 10 % when stderr is not a terminal)."""

    def __init__(self, total: int, label: str = "publishing", stream: Any = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._last = 0.0
        self._decile = -1

    def update(self, done: int, note: str = "", force: bool = False) -> None:
        now = time.monotonic()
        frac = min(1.0, done / self.total)
        if self.tty:
            if not force and now - self._last < 0.25:
                return
            self._last = now
            width = 30
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            rate = done / max(now - self.t0, 1e-6)
            self.stream.write(
                f"\r{self.label} [{bar}] {done}/{self.total} {frac:5.1%} {rate:7.0f}/s {note}  "
            )
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._decile or force:
                self._decile = decile
                rate = done / max(now - self.t0, 1e-6)
                self.stream.write(
                    f"{self.label}: {done}/{self.total} ({frac:.0%}, {rate:.0f}/s) {note}\n"
                )
                self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Publisher:
    def __init__(
        self,
        endpoints: Mapping[str, Any],
        *,
        credentials: Mapping[str, str] | None = None,
        per_identity: bool = False,
        client_prefix: str = "sitewatch-sim",
        max_outstanding: int = 2000,
    ) -> None:
        self.host = str(endpoints["mqtt_host"])
        self.port = int(endpoints["mqtt_port"])
        self.service = (str(endpoints["mqtt_username"]), str(endpoints["mqtt_password"]))
        self.credentials = dict(credentials or {})
        self.per_identity = per_identity
        self.client_prefix = f"{client_prefix}-{uuid.uuid4().hex[:6]}"
        self.max_outstanding = max_outstanding
        self.clients: dict[str, mqtt.Client] = {}
        self._lock = threading.Lock()
        self.sent = 0
        self.acked = 0
        self.refused: dict[str, str] = {}

    def _on_publish(self, *_: Any) -> None:
        with self._lock:
            self.acked += 1

    def _client(self, identity: str) -> mqtt.Client:
        key = identity if self.per_identity else "__service__"
        client = self.clients.get(key)
        if client is not None:
            return client
        if self.per_identity:
            if identity not in self.credentials:
                raise PublishError(f"no MQTT password for {identity!r}")
            user, password = identity, self.credentials[identity]
        else:
            user, password = self.service
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self.client_prefix}-{len(self.clients)}",
            clean_session=True,
        )
        client.username_pw_set(user, password)
        client.max_inflight_messages_set(100 if not self.per_identity else 20)
        client.max_queued_messages_set(0)
        connected = threading.Event()
        failure: list[str] = []

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if getattr(reason, "is_failure", False):
                failure.append(str(reason))
            connected.set()

        client.on_connect = on_connect
        client.on_publish = self._on_publish
        client.connect(self.host, self.port, keepalive=60)
        client.loop_start()
        if not connected.wait(30) or failure:
            client.loop_stop()
            why = failure[0] if failure else "no CONNACK within 30 s"
            self.refused[user] = why
            raise PublishError(f"MQTT connection as {user!r} refused: {why}")
        self.clients[key] = client
        return client

    def publish(self, identity: str, topic: str, payload: bytes) -> None:
        client = self._client(identity)
        while self.sent - self.acked > self.max_outstanding:
            time.sleep(0.002)
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        self.sent += 1

    def drain(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise PublishError(
                    f"broker acknowledged {self.acked} of {self.sent} messages in {timeout_s} s"
                )
            time.sleep(0.02)

    def close(self) -> None:
        for client in self.clients.values():
            client.disconnect()
            client.loop_stop()
        self.clients.clear()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def pace_and_publish(
    publisher: Publisher,
    messages: Iterable[Outgoing],
    total: int,
    *,
    rate: float | None = None,
    speedup: float | None = None,
    progress: Progress | None = None,
    note: Callable[[Outgoing], str] | None = None,
) -> PublishStats:
    """Publish in order; message i goes out no earlier than ``i / rate`` seconds and (with a
    speed-up) no earlier than its simulated time divided by the speed-up, after the first."""
    stats = PublishStats()
    t_wall0 = time.monotonic()
    t_sim0: float | None = None
    last_ts = 0.0
    for i, m in enumerate(messages):
        if t_sim0 is None:
            t_sim0 = m.ts
        due = t_wall0
        if rate and rate > 0 and math.isfinite(rate):
            due = max(due, t_wall0 + i / rate)
        if speedup and speedup > 0 and math.isfinite(speedup):
            due = max(due, t_wall0 + (m.ts - t_sim0) / speedup)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(m.identity, m.topic, m.payload)
        last_ts = max(last_ts, m.ts)
        if progress is not None:
            progress.update(i + 1, note(m) if note else "")
    publisher.drain()
    stats.messages = publisher.sent
    stats.acked = publisher.acked
    stats.wall_s = time.monotonic() - t_wall0
    stats.sim_span_s = (last_ts - t_sim0) if t_sim0 is not None else 0.0
    stats.connections = len(publisher.clients)
    stats.refused = dict(publisher.refused)
    if progress is not None:
        progress.update(stats.messages, "acknowledged", force=True)
        progress.close()
    return stats
