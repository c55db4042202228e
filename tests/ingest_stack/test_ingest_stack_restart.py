"""The bridge is killed (SIGKILL) while check-ins are being published, then started again: every
message the broker acknowledged to the publisher is in the fixes table exactly once, and the
broker's redeliveries of what the dead bridge had already forwarded leave no replay dead
letters behind."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from stack.up import Stack
from tests.ingest_stack.helpers import (
    checkin,
    fix_rows,
    register_engineer,
    rejected,
    tag,
    utcnow,
    wait_fixes,
)
from tests.stack_client import StackClient

N = 600
RATE = 150.0  # msgs/s: the kill lands in the middle of the stream


def test_kill_bridge_while_publishing(sw: StackClient, running_stack: Stack) -> None:
    eid = f"IS-K-{tag()}"
    password = register_engineer(sw, eid)
    topic = f"sitewatch/checkin/{eid}"
    since = utcnow()
    # No on_publish callback: paho runs it under its own outgoing-message lock, so a callback
    # taking a lock the publishing thread holds deadlocks the test. The message infos carry
    # the broker's acknowledgement instead.
    sent: list[tuple[str, mqtt.MQTTMessageInfo]] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"kill-{tag()}")
    client.username_pw_set(eid, password)
    client.max_inflight_messages_set(200)
    client.connect(sw.endpoints["mqtt_host"], int(sw.endpoints["mqtt_port"]))
    client.loop_start()
    old = running_stack.components["bridge"]
    killed = threading.Event()

    def killer() -> None:
        time.sleep(N / RATE / 3)
        os.kill(old.pid, signal.SIGKILL)
        old.popen.wait(10)
        killed.set()

    def acked() -> set[str]:
        return {msg_id for msg_id, info in sent if info.is_published()}

    threading.Thread(target=killer, daemon=True).start()
    try:
        started = time.monotonic()
        for k in range(N):
            msg_id = f"{eid}-{k:04d}"
            sent.append((msg_id, client.publish(topic, json.dumps(checkin(eid, msg_id)), qos=1)))
            delay = started + (k + 1) / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        published_after_kill = killed.is_set()
        deadline = time.monotonic() + 60
        while len(acked()) < N and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
        # whatever failed above, the stack the later tests share gets its bridge back
        if killed.wait(30):
            running_stack.supervisor.children.remove(old)
            new = running_stack.start_component("bridge")
    assert killed.is_set(), "the bridge was not killed"
    assert published_after_kill, "the kill did not land while publishing"
    assert old.popen.returncode == -signal.SIGKILL
    assert new.pid != old.pid
    delivered = acked()
    assert len(delivered) == N, f"the broker acknowledged only {len(delivered)} of {N}"

    rows = wait_fixes(sw, eid, delivered, timeout_s=180)
    assert set(rows) == delivered
    duplicates = {m: n for m, n in rows.items() if n != 1}
    assert not duplicates, f"stored more than once: {duplicates}"
    replays = [r for r in rejected(sw, since) if r["topic"] == topic]
    assert not replays, f"redeliveries became dead letters: {replays[:3]}"

    # the new bridge keeps forwarding
    after = f"{eid}-after"
    sw.publish(topic, checkin(eid, after), username=eid, password=password)
    wait_fixes(sw, eid, {after})
    assert fix_rows(sw, eid)[after] == 1 and new.popen.poll() is None
