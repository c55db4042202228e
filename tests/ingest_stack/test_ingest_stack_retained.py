"""Retained MQTT messages do not pile up in the broker: OwnTracks publishes with the retain
flag, and any engineer could leave large retained messages under `owntracks/<id>/<anything>`.
The bridge clears the retained copy of every OwnTracks topic it received (ingest.bridge), and
never asks for retained copies when it subscribes."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from stack.up import Stack
from tests.ingest_stack.helpers import register_engineer, tag
from tests.stack_client import StackClient


def retained_copies(sw: StackClient, running_stack: Stack, pattern: str) -> list[str]:
    """Topics whose retained copy a new subscriber gets (with the bridge's account, which may
    subscribe to every ingest topic, under a client id of its own)."""
    password = (Path(running_stack.options.data_dir) / "mqtt" / "bridge.secret").read_text()
    got: list[str] = []
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    client.username_pw_set("sitewatch-bridge", password.strip())
    client.on_message = lambda _c, _u, m: got.append(m.topic) if m.retain else None
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(sw.endpoints["mqtt_host"], int(sw.endpoints["mqtt_port"]))
    client.loop_start()
    try:
        client.subscribe(pattern, qos=1)
        assert subscribed.wait(10)
        time.sleep(2)  # retained copies come right after the SUBACK
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def test_retained_copies_are_cleared(sw: StackClient, running_stack: Stack) -> None:
    eid = f"RT-{tag()}"
    password = register_engineer(sw, eid)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phone-{eid}")
    client.username_pw_set(eid, password)
    client.connect(sw.endpoints["mqtt_host"], int(sw.endpoints["mqtt_port"]))
    client.loop_start()
    try:
        infos = [
            client.publish(f"owntracks/{eid}/junk-{k}", b"x" * 200_000, qos=1, retain=True)
            for k in range(5)
        ]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()
    deadline = time.monotonic() + 30
    while (left := retained_copies(sw, running_stack, f"owntracks/{eid}/#")) and (
        time.monotonic() < deadline
    ):
        time.sleep(1)
    assert left == []
