"""Registering an engineer or a device creates its MQTT identity in the running Mosquitto
(dynamic security, no restart): it may publish to its own topics only (CONTRACT section 3).
Driven with Debian's mosquitto_pub, as a phone or a site gateway would."""

from __future__ import annotations

import time
from typing import Any

from gm.algorithms import canonical_bytes, sm3_hmac_hex
from stack.up import Stack
from tests.api.conftest import NANSHAN, feature, mosquitto_pub, register_engineer, spot, tag
from tests.stack_client import StackClient, wait_until


def _fixes(sw: StackClient, engineer_id: str) -> list[str]:
    return [r[0] for r in sw.sql("SELECT msg_id FROM fixes WHERE engineer_id = %s", engineer_id)]


def _mosquitto_pid(stack: Stack) -> int:
    (child,) = [c for c in stack.supervisor.children if "mosquitto" in c.name]
    return int(child.pid)


def test_engineer_identity_publishes_only_to_its_own_topics(
    sw: StackClient, running_stack: Stack
) -> None:
    broker_pid = _mosquitto_pid(running_stack)
    me, victim = f"BI-E-{tag()}", f"BI-V-{tag()}"
    password = register_engineer(sw, me, "440305")
    register_engineer(sw, victim, "440305")
    lon, lat = spot(NANSHAN)
    now = time.time() - 30

    def fix(engineer_id: str, msg_id: str) -> dict[str, Any]:
        return {"msg_id": msg_id, "engineer_id": engineer_id, "ts": now, "lat": lat, "lon": lon}

    # wrong password: refused at connect
    bad = mosquitto_pub(sw, f"sitewatch/checkin/{me}", fix(me, "bad"), user=me, password="nope")
    assert bad.returncode != 0

    # into another engineer's topics, with a payload naming the other engineer: dropped by the
    # broker's ACL (MQTT 5 reports "not authorized"; nothing reaches the bridge)
    for topic in (f"sitewatch/checkin/{victim}", f"owntracks/{victim}/phone"):
        forged = mosquitto_pub(
            sw, topic, fix(victim, f"forged-{topic}"), user=me, password=password
        )
        assert "not authorized" in (forged.stdout + forged.stderr).lower() or forged.returncode
    # its own topics: accepted and processed (the marker that the pipeline has caught up)
    ok = mosquitto_pub(sw, f"sitewatch/checkin/{me}", fix(me, "own-1"), user=me, password=password)
    assert ok.returncode == 0, ok.stderr
    ot = {"_type": "location", "lat": lat, "lon": lon, "tst": int(now) + 1, "acc": 5, "tid": "p"}
    ok = mosquitto_pub(sw, f"owntracks/{me}/phone", ot, user=me, password=password)
    assert ok.returncode == 0, ok.stderr
    wait_until(lambda: len(_fixes(sw, me)) == 2, timeout_s=60, what="both own fixes stored")
    time.sleep(3)
    assert _fixes(sw, victim) == []
    rejected = sw.sql("SELECT count(*) FROM rejected_messages WHERE topic LIKE %s", f"%{victim}%")
    assert rejected == [(0,)]  # never reached the bridge at all

    # a new password through the API: the old one stops working, the new one works
    with sw.api() as api:
        r = api.post(f"/api/engineers/{me}/credentials")
    assert r.status_code == 200, r.text
    new_password = r.json()["mqtt_password"]
    old = mosquitto_pub(sw, f"sitewatch/checkin/{me}", fix(me, "old"), user=me, password=password)
    assert old.returncode != 0
    new = mosquitto_pub(
        sw, f"sitewatch/checkin/{me}", fix(me, "own-2"), user=me, password=new_password
    )
    assert new.returncode == 0, new.stderr
    wait_until(
        lambda: "own-2" in _fixes(sw, me), timeout_s=60, what="the fix with the new password"
    )
    assert _mosquitto_pid(running_stack) == broker_pid  # the broker was never restarted


def test_device_identity_publishes_only_to_its_own_topics(sw: StackClient) -> None:
    pid, me, other = f"BI-P-{tag()}", f"BI-D-{tag()}", f"BI-O-{tag()}"
    with sw.api() as api:
        r = api.post("/api/projects", json=feature(pid, *spot(NANSHAN), region_code="440305"))
        assert r.status_code == 201, r.text
        created = {}
        for did in (me, other):
            r = api.post(
                "/api/devices",
                json={"id": did, "project_id": pid, "kind": "env", "report_interval_s": 60},
            )
            assert r.status_code == 201, r.text
            created[did] = r.json()
    password = created[me]["mqtt_password"]
    key = bytes.fromhex(created[me]["hmac_key"])

    def telemetry(msg_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"msg_id": msg_id, "ts": time.time() - 5, "metrics": {"pm10": 42}}
        body["mac"] = sm3_hmac_hex(key, canonical_bytes(body))
        return body

    forged = mosquitto_pub(
        sw, f"sitewatch/devices/{other}/telemetry", telemetry("forged"), user=me, password=password
    )
    assert "not authorized" in (forged.stdout + forged.stderr).lower() or forged.returncode
    # a device may not pose as an engineer either
    as_engineer = mosquitto_pub(
        sw, "sitewatch/checkin/someone", {"msg_id": "x"}, user=me, password=password
    )
    assert "not authorized" in (as_engineer.stdout + as_engineer.stderr).lower() or (
        as_engineer.returncode
    )
    ok = mosquitto_pub(
        sw, f"sitewatch/devices/{me}/telemetry", telemetry("own"), user=me, password=password
    )
    assert ok.returncode == 0, ok.stderr
    wait_until(
        lambda: sw.sql("SELECT msg_id FROM telemetry WHERE device_id = %s", me) == [("own",)],
        timeout_s=60,
        what="the device's own telemetry stored",
    )
    time.sleep(3)
    assert sw.sql("SELECT count(*) FROM telemetry WHERE device_id = %s", other) == [(0,)]
