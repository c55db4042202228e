"""Mosquitto's journal plugin (stack/mosquitto/sitewatch_journal.c) on a real Mosquitto: what it
acknowledged with PUBACK reaches the bridge's persistent session after a SIGKILL, even though no
snapshot was written after the acknowledgement; after a clean stop nothing is published twice."""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.broker import INGEST_TOPICS, RECOVERED_PREFIX, BrokerAdmin
from stack import mosquitto_broker
from stack.processes import Child, Supervisor

pytestmark = pytest.mark.skipif(
    not mosquitto_broker.JOURNAL_PLUGIN.exists(), reason="make mosquitto-journal builds the plugin"
)

BRIDGE = "sitewatch-bridge"


@dataclass
class Broker:
    sup: Supervisor
    data: Path
    port: int
    child: Child
    passwords: dict[str, str]

    def kill9(self) -> None:
        os.kill(self.child.pid, signal.SIGKILL)
        self.child.popen.wait(10)

    def stop(self) -> None:
        self.child.popen.send_signal(signal.SIGTERM)
        self.child.popen.wait(20)

    def start_again(self) -> None:
        self.child = mosquitto_broker.start_mosquitto(self.sup, self.data, self.port).child


@pytest.fixture
def b(tmp_path: Path) -> Iterator[Broker]:
    sup = Supervisor(tmp_path / "logs")
    mq = mosquitto_broker.start_mosquitto(sup, tmp_path)
    admin = BrokerAdmin("127.0.0.1", mq.port, "sitewatch-admin", mq.admin_password)
    passwords = {BRIDGE: secrets.token_urlsafe(12), "phone": secrets.token_urlsafe(12)}
    admin.ensure_bridge(BRIDGE, passwords[BRIDGE])
    admin.ensure_service("phone", passwords["phone"])
    b = Broker(sup, tmp_path, mq.port, mq.child, passwords)
    try:
        yield b
    finally:
        sup.stop_all()


def _client(b: Broker, user: str, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, b.passwords[user])
    return c


def _bridge_session(b: Broker, *, seconds: float = 0.0) -> list[tuple[str, bytes]]:
    """Connect as the bridge (persistent session), subscribe as ingest.bridge does, collect for
    `seconds`, disconnect: the session keeps queueing for it."""
    got: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    c = _client(b, BRIDGE, "bridge-under-test")
    c.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload)))
    c.on_subscribe = lambda *_a: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", b.port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe([(t, 1) for t in (*INGEST_TOPICS, RECOVERED_PREFIX + "#")])
    assert subscribed.wait(10)
    time.sleep(seconds)
    c.disconnect()
    c.loop_stop()
    return got


def _publish_acknowledged(b: Broker, n: int) -> list[bytes]:
    c = _client(b, "phone", "phone-under-test")
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    payloads = [f'{{"msg_id": "m-{k}"}}'.encode() for k in range(n)]
    infos = [c.publish(f"sitewatch/checkin/e{k % 7}", p, qos=1) for k, p in enumerate(payloads)]
    for info in infos:
        info.wait_for_publish(10)  # PUBACK received: Mosquitto took it
    c.disconnect()
    c.loop_stop()
    return payloads


def _snapshot_written(b: Broker) -> None:
    """Wait for an autosave (every 1-2 s) so the bridge's session is in the snapshot."""
    db = b.data / "mqtt" / "mosquitto.db"
    before = db.stat().st_mtime if db.exists() else 0.0
    deadline = time.monotonic() + 10
    while not (db.exists() and db.stat().st_mtime > before):
        assert time.monotonic() < deadline, "Mosquitto wrote no snapshot"
        time.sleep(0.1)


def test_acknowledged_messages_survive_a_sigkill_before_the_next_snapshot(b: Broker) -> None:
    _bridge_session(b)
    _snapshot_written(b)
    payloads = _publish_acknowledged(b, 300)
    b.kill9()  # within milliseconds of the last PUBACK: no snapshot holds most of them
    b.start_again()
    got = _bridge_session(b, seconds=3.0)
    received = {p for _t, p in got}
    assert set(payloads) <= received, f"{len(set(payloads) - received)} of 300 lost"
    recovered = [t for t, _p in got if t.startswith(RECOVERED_PREFIX)]
    assert recovered, "nothing came from the journal"
    assert all(t[len(RECOVERED_PREFIX) :].startswith("sitewatch/checkin/") for t in recovered)


def test_a_torn_record_ends_the_segment_and_the_rest_is_recovered(b: Broker) -> None:
    _bridge_session(b)
    _snapshot_written(b)
    payloads = _publish_acknowledged(b, 50)
    b.kill9()
    newest = max((b.data / "mqtt" / "journal").glob("*.journal"))
    with newest.open("ab") as f:
        f.write(b"\xff\x00\x00\x00M\x01")  # a record cut short: the crash in mid-write
    b.start_again()
    received = {p for _t, p in _bridge_session(b, seconds=3.0)}
    assert set(payloads) <= received


def test_after_a_clean_stop_nothing_is_published_again(b: Broker) -> None:
    _bridge_session(b)
    _snapshot_written(b)
    payloads = _publish_acknowledged(b, 100)
    b.stop()  # SIGTERM: Mosquitto writes its snapshot, the plugin its clean-stop record
    b.start_again()
    got = _bridge_session(b, seconds=2.0)
    assert sorted(p for _t, p in got) == sorted(payloads)  # from the snapshot, each once
    assert not [t for t, _p in got if t.startswith(RECOVERED_PREFIX)]
    journal = b.data / "mqtt" / "journal"
    assert journal.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in journal.glob("*.journal"))


def test_nobody_but_the_plugin_publishes_on_the_recovered_topics(b: Broker) -> None:
    _bridge_session(b)
    c = _client(b, "phone", "phone-forger")
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    info = c.publish(RECOVERED_PREFIX + "sitewatch/checkin/e1", b'{"msg_id": "forged"}', qos=1)
    info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    got = _bridge_session(b, seconds=1.0)
    assert not got, got


def test_a_topic_too_long_to_publish_again_is_refused(b: Broker) -> None:
    """A recovered topic is the prefix plus the original: one that would then pass MQTT's
    65,535 bytes is refused when it arrives, never journalled nor acknowledged as kept."""
    _bridge_session(b)
    _snapshot_written(b)
    c = _client(b, "phone", "phone-long-topic")
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    codes: list[int] = []
    c.on_publish = lambda _c, _u, _mid, reason, _p: codes.append(reason.value)
    long_topic = "sitewatch/checkin/" + "x" * (65_535 - len("sitewatch/checkin/"))
    c.publish(long_topic, b'{"msg_id": "long"}', qos=1).wait_for_publish(10)
    ok = _publish_acknowledged(b, 5)
    c.disconnect()
    c.loop_stop()
    assert codes and codes[0] == 135  # MQTT 5: not authorized
    b.kill9()
    b.start_again()
    got = _bridge_session(b, seconds=3.0)
    assert set(ok) <= {p for _t, p in got}
    assert all(len(t) < 65_536 for t, _p in got) and b'{"msg_id": "long"}' not in {
        p for _t, p in got
    }
