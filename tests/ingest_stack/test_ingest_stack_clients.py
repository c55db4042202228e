"""Third-party clients against the running stack: Debian's mosquitto_pub with engineer and
device identities, raw HTTP as Traccar Client (OsmAnd query, form and Client 9 JSON) and the
OwnTracks app (HTTP mode) send it. Every accepted message lands once; every refused one is in
GET /api/ingest/rejected with its reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.ingest_stack.helpers import (
    LAT,
    LON,
    checkin,
    fix_rows,
    maced,
    mosquitto_pub,
    register_device,
    register_engineer,
    registration,
    tag,
    utcnow,
    wait_fixes,
    wait_rejected,
)
from tests.stack_client import StackClient, wait_until


def test_mosquitto_pub_checkins_once_and_replay_rejected(sw: StackClient) -> None:
    eid = f"IS-E-{tag()}"
    password = register_engineer(sw, eid)
    since = utcnow()
    topic = f"sitewatch/checkin/{eid}"
    ids = {f"{eid}-m{k}" for k in range(3)}
    for k, msg_id in enumerate(sorted(ids)):
        mosquitto_pub(
            sw,
            topic,
            checkin(eid, msg_id, kind="checkin" if k == 0 else "position"),
            user=eid,
            password=password,
        )
    rows = wait_fixes(sw, eid, ids)
    assert rows == dict.fromkeys(ids, 1)
    # the same message again (MQTT 5 this time): a replay, kept with its reason, not stored twice
    mosquitto_pub(
        sw, topic, checkin(eid, sorted(ids)[1]), user=eid, password=password, version="mqttv5"
    )
    hit = wait_rejected(sw, since, lambda r: r["topic"] == topic and r["reason"] == "replay")[0]
    assert hit["source"] == "mqtt" and sorted(ids)[1] in hit["excerpt"] and hit["message"]
    assert fix_rows(sw, eid) == dict.fromkeys(ids, 1)


def test_mosquitto_pub_owntracks_location_and_transition(sw: StackClient) -> None:
    eid = f"IS-OT-{tag()}"
    password = register_engineer(sw, eid)
    tst = int(time.time()) - 20
    location = {
        "_type": "location",
        "lat": LAT,
        "lon": LON,
        "tst": tst,
        "acc": 12,
        "vel": 18,
        "batt": 77,
        "tid": "ph",
        "conn": "m",
    }
    mosquitto_pub(sw, f"owntracks/{eid}/phone", location, user=eid, password=password)
    msg_id = f"ot:{eid}:phone:{tst}"
    wait_fixes(sw, eid, {msg_id})
    source, speed, battery = sw.sql(
        "SELECT source, speed_kmh, battery FROM fixes WHERE engineer_id = %s", eid
    )[0]
    assert (source, speed, battery) == ("owntracks", 18.0, 77.0)
    transition = {
        "_type": "transition",
        "event": "enter",
        "desc": "site",
        "tst": tst + 5,
        "wtst": tst,
        "lat": LAT,
        "lon": LON,
        "acc": 10,
        "t": "c",
        "tid": "ph",
    }
    mosquitto_pub(sw, f"owntracks/{eid}/phone/event", transition, user=eid, password=password)
    rows = wait_until(
        lambda: sw.sql("SELECT type FROM owntracks_events WHERE engineer_id = %s", eid),
        timeout_s=90,
        what="the OwnTracks transition",
    )
    assert rows == [("transition",)]


def test_mosquitto_pub_device_telemetry_mac(sw: StackClient, tmp_path: Path) -> None:
    did = f"IS-D-{tag()}"
    key, password = register_device(sw, did)
    topic = f"sitewatch/devices/{did}/telemetry"
    since = utcnow()
    good = maced({"msg_id": f"{did}-1", "ts": time.time() - 10, "metrics": {"pm25": 35.5}}, key)
    bad = maced({"msg_id": f"{did}-2", "ts": time.time() - 9, "metrics": {"pm25": 36.0}}, key)
    bad["metrics"] = {"pm25": 3.0}  # altered after the MAC
    mosquitto_pub(sw, topic, good, user=did, password=password)
    mosquitto_pub(sw, topic, bad, user=did, password=password)
    rows = wait_until(
        lambda: sw.sql("SELECT msg_id FROM telemetry WHERE device_id = %s", did),
        timeout_s=90,
        what="the device's telemetry",
    )
    assert rows == [(f"{did}-1",)]
    hit = wait_rejected(sw, since, lambda r: r["topic"] == topic)
    assert hit[0]["reason"] == "bad_mac" and f"{did}-2" in hit[0]["excerpt"]
    assert sw.sql("SELECT count(*) FROM telemetry WHERE device_id = %s", did) == [(1,)]


def test_traccar_osmand_query_form_and_client9_json(sw: StackClient) -> None:
    eid = f"IS-TC-{tag()}"
    phone = registration(sw, eid)["osmand_id"]  # the phone's secret id, not the engineer's
    t = int(time.time()) - 60
    base = sw.http
    with httpx.Client(base_url=base, timeout=60) as http:
        # Traccar Client (classic): GET with the query string, speed in knots
        r = http.get(
            "/osmand",
            params={
                "id": phone,
                "lat": LAT,
                "lon": LON,
                "timestamp": t,
                "speed": 10,
                "bearing": 90,
                "altitude": 12,
                "accuracy": 5,
                "batt": 80,
            },
        )
        assert r.status_code == 200, r.text
        # the same protocol as a form POST with an empty query
        r = http.post(
            "/osmand",
            content=f"id={phone}&lat={LAT}&lon={LON}&timestamp={t + 10}&speed=0",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200, r.text
        # Traccar Client 9: JSON body, speed in m/s, ISO time, battery 0..1
        iso = datetime.fromtimestamp(t + 20, UTC).isoformat().replace("+00:00", "Z")
        body = {
            "device_id": phone,
            "location": {
                "timestamp": iso,
                "coords": {
                    "latitude": LAT,
                    "longitude": LON,
                    "accuracy": 4.5,
                    "speed": 5.0,
                    "heading": 180,
                    "altitude": 20,
                },
                "is_moving": True,
                "odometer": 100,
                "event": "motionchange",
                "battery": {"level": 0.55, "is_charging": False},
                "activity": {"type": "walking"},
            },
        }
        r = http.post("/osmand", json=body)
        assert r.status_code == 200, r.text
        # an unknown id is refused with its reason, as an HTTP 400; the engineer's own id gets
        # the very same answer (v1.1: nobody can post an engineer's position knowing their id)
        unknown = http.get("/osmand", params={"id": f"nobody-{tag()}", "lat": LAT, "lon": LON})
        assert unknown.status_code == 400
        assert unknown.json()["detail"]["reason"] == "unknown_identity"
        own = http.get("/osmand", params={"id": eid, "lat": LAT, "lon": LON})
        assert (own.status_code, own.json()) == (400, unknown.json())
    ids = {
        f"osmand:{eid}:{t * 1000}",
        f"osmand:{eid}:{(t + 10) * 1000}",
        f"osmand:{eid}:{(t + 20) * 1000}",
    }
    assert wait_fixes(sw, eid, ids) == dict.fromkeys(ids, 1)
    rows = {
        r[0]: r[1:]
        for r in sw.sql(
            "SELECT msg_id, source, speed_kmh, battery, acc_m FROM fixes WHERE engineer_id = %s",
            eid,
        )
    }
    classic = rows[f"osmand:{eid}:{t * 1000}"]
    assert classic[0] == "osmand" and classic[1:3] == pytest.approx((18.52, 80.0))  # 10 kn
    client9 = rows[f"osmand:{eid}:{(t + 20) * 1000}"]
    assert client9[1:] == pytest.approx((18.0, 55.0, 4.5))  # 5 m/s, 55 %, 4.5 m


def test_owntracks_http_mode(sw: StackClient) -> None:
    eid = f"IS-OH-{tag()}"
    password = register_engineer(sw, eid)
    tst = int(time.time()) - 40
    since = utcnow()
    with httpx.Client(base_url=sw.http, timeout=60) as anonymous:
        r = anonymous.post(
            "/owntracks",
            json={"_type": "location", "lat": LAT, "lon": LON, "tst": tst, "acc": 9},
            headers={"X-Limit-U": eid},
        )
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert r.json()["detail"]["reason"] == "unauthenticated"
        wrong = anonymous.post("/owntracks", json={}, auth=(eid, password + "x"))
        assert (wrong.status_code, wrong.json()) == (401, r.json())
    with httpx.Client(base_url=sw.http, timeout=60, auth=(eid, password)) as http:
        r = http.post(
            "/owntracks",
            json={"_type": "location", "lat": LAT, "lon": LON, "tst": tst, "acc": 9, "tid": "ab"},
            headers={"X-Limit-U": eid, "X-Limit-D": "iphone"},
        )
        assert r.status_code == 200 and r.json() == []
        # a card message is a well-formed OwnTracks type SiteWatch does not use: 200, logged
        r = http.post(
            "/owntracks",
            json={"_type": "card", "name": eid},
            headers={"X-Limit-U": eid, "X-Limit-D": "iphone"},
        )
        assert r.status_code == 200 and r.json() == []
        # truncated JSON: 400 with the reason
        r = http.post(
            "/owntracks",
            content=b'{"_type":"location","tid":"' + eid.encode() + b'","lat":22.5',
            headers={"X-Limit-U": eid, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["detail"]["reason"] == "bad_json"
    assert wait_fixes(sw, eid, {f"ot:{eid}:iphone:{tst}"}) == {f"ot:{eid}:iphone:{tst}": 1}
    assert sw.sql("SELECT source FROM fixes WHERE engineer_id = %s", eid) == [("owntracks-http",)]
    reasons = {
        r["reason"]
        for r in wait_rejected(
            sw, since, lambda r: r["topic"] == "/owntracks" and eid in r["excerpt"], count=2
        )
    }
    assert {"ignored_type", "bad_json"} <= reasons


def _ingest_counters(sw: StackClient) -> dict[tuple[str, str], int]:
    with httpx.Client(base_url=sw.http, timeout=60) as http:
        text = http.get("/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("sitewatch_ingest_messages_total{"):
            labels, value = line.rsplit(" ", 1)
            source = labels.split('source="')[1].split('"')[0]
            outcome = labels.split('outcome="')[1].split('"')[0]
            out[(source, outcome)] = int(float(value))
    return out


def test_metrics_count_the_bridges_outcomes(sw: StackClient) -> None:
    eid = f"IS-M-{tag()}"
    password = register_engineer(sw, eid)
    before = _ingest_counters(sw)
    topic = f"sitewatch/checkin/{eid}"
    mosquitto_pub(sw, topic, checkin(eid, f"{eid}-1"), user=eid, password=password)
    mosquitto_pub(sw, topic, '{"msg_id": "truncated', user=eid, password=password)
    mosquitto_pub(sw, topic, checkin(eid, f"{eid}-2", lat=95.0), user=eid, password=password)

    def grown() -> dict[tuple[str, str], int] | None:
        now = _ingest_counters(sw)
        ok = all(
            now.get(("mqtt", o), 0) > before.get(("mqtt", o), 0)
            for o in ("accepted", "bad_json", "out_of_range")
        )
        return now if ok else None

    wait_until(grown, timeout_s=60, what="the bridge's counters in /metrics")
