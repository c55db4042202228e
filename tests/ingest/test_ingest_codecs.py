from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from geofence.coords import wgs84_to_bd09, wgs84_to_gcj02
from gm.algorithms import canonical_bytes
from wire.codecs import decode_mqtt, decode_owntracks_http
from wire.records import Fix, OwnTracksEvent, Rejected, SupervisionLog, Telemetry

NOW = 1_700_000_300.0
TS = 1_700_000_000


def enc(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def reason(topic: str, payload: bytes) -> str:
    with pytest.raises(Rejected) as info:
        decode_mqtt(topic, payload, now=NOW)
    assert info.value.message
    return info.value.reason


# ---------------------------------------------------------------- OwnTracks (booklet examples)

OT_LOCATION = {
    "_type": "location",
    "BSSID": "b0:f2:8:45:94:33",
    "SSID": "site-wifi",
    "acc": 13,
    "alt": 24,
    "batt": 95,
    "bs": 1,
    "conn": "w",
    "created_at": TS,
    "inregions": ["site-a"],
    "lat": 22.543099,
    "lon": 114.057868,
    "m": 1,
    "tid": "jj",
    "tst": TS,
    "vac": 6,
    "vel": 36,
}


def test_owntracks_location() -> None:
    fix = decode_mqtt("owntracks/E1/phone", enc(OT_LOCATION), now=NOW)
    assert isinstance(fix, Fix)
    assert fix.msg_id == f"ot:E1:phone:{TS}"
    assert (fix.engineer_id, fix.ts, fix.lat, fix.lon) == ("E1", TS, 22.543099, 114.057868)
    assert (fix.acc_m, fix.speed_kmh, fix.battery) == (13.0, 36.0, 95.0)
    assert (fix.kind, fix.source, fix.crs) == ("position", "owntracks", "wgs84")
    assert fix.canonical == canonical_bytes(OT_LOCATION)
    # redelivery -> same id
    assert decode_mqtt("owntracks/E1/phone", enc(OT_LOCATION), now=NOW).msg_id == fix.msg_id


def test_owntracks_ids_keep_the_time_as_sent() -> None:
    """The time is kept to the microsecond, the id as before that rounding (evidence chained
    earlier still verifies, replays are still recognised)."""
    fix = decode_mqtt("owntracks/E1/phone", enc({**OT_LOCATION, "tst": TS + 0.1234567}), now=NOW)
    assert isinstance(fix, Fix)
    assert fix.msg_id == f"ot:E1:phone:{TS + 0.1234567!r}"
    assert fix.ts == round(TS + 0.1234567, 6)


def test_owntracks_minimal_location_and_sig_is_kept() -> None:
    fix = decode_mqtt(
        "owntracks/E1/phone",
        enc({"_type": "location", "lat": 1.5, "lon": 2.5, "tst": TS, "sig": "ab"}),
        now=NOW,
    )
    assert isinstance(fix, Fix)
    assert fix.acc_m is None and fix.speed_kmh is None and fix.sig == "ab"
    assert b"sig" not in fix.canonical


def test_owntracks_transition_and_lwt() -> None:
    tr = {
        "_type": "transition",
        "wtst": 1_690_000_000,
        "lat": 22.5,
        "lon": 114.0,
        "tst": TS,
        "acc": 10,
        "tid": "jj",
        "event": "enter",
        "desc": "Site A",
        "t": "c",
        "rid": "r-1",
    }
    ev = decode_mqtt("owntracks/E1/phone/event", enc(tr), now=NOW)
    assert isinstance(ev, OwnTracksEvent)
    assert ev.type == "transition" and ev.payload == tr and ev.ts == TS
    assert ev.msg_id == f"ot:E1:phone:transition:{TS}:enter:r-1"
    ev2 = decode_mqtt("owntracks/E1/phone", enc(tr), now=NOW)
    assert ev2.msg_id == ev.msg_id
    lwt = decode_mqtt("owntracks/E1/phone", enc({"_type": "lwt", "tst": TS}), now=NOW)
    assert isinstance(lwt, OwnTracksEvent) and lwt.type == "lwt"
    assert lwt.msg_id == f"ot:E1:phone:lwt:{TS}"
    assert reason("owntracks/E1/phone", enc({**tr, "event": "stay"})) == "bad_value"


@pytest.mark.parametrize(
    "obj",
    [
        {"_type": "card", "name": "Jane"},
        {"_type": "waypoint", "desc": "x", "lat": 1, "lon": 2, "tst": TS, "rad": 50},
        {"_type": "cmd", "action": "reportLocation"},
        {"_type": "encrypted", "data": "abc"},
        {"_type": "status"},
    ],
)
def test_owntracks_other_types_are_ignored(obj: dict[str, Any]) -> None:
    assert reason("owntracks/E1/phone", enc(obj)) == "ignored_type"


def test_owntracks_subtopics() -> None:
    assert reason("owntracks/E1/phone/info", enc({"_type": "card"})) == "ignored_type"
    assert reason("owntracks/E1/phone/waypoints", b"{}") == "ignored_type"
    assert reason("owntracks/E1/phone/other", b"{}") == "unknown_topic"


def test_owntracks_http() -> None:
    fix = decode_owntracks_http("E1", "phone", enc(OT_LOCATION), now=NOW)
    assert isinstance(fix, Fix) and fix.source == "owntracks-http"
    assert fix.msg_id == f"ot:E1:phone:{TS}"
    no_dev = decode_owntracks_http("E1", None, enc(OT_LOCATION), now=NOW)
    assert no_dev.msg_id == f"ot:E1:jj:{TS}"
    bare = {k: v for k, v in OT_LOCATION.items() if k != "tid"}
    assert decode_owntracks_http("E1", None, enc(bare), now=NOW).msg_id == f"ot:E1:http:{TS}"
    with pytest.raises(Rejected) as info:
        decode_owntracks_http("", None, enc(OT_LOCATION), now=NOW)
    assert info.value.reason == "out_of_range"
    with pytest.raises(Rejected) as info:
        decode_owntracks_http("E1", None, enc([OT_LOCATION]), now=NOW)
    assert info.value.reason == "bad_json"


# ---------------------------------------------------------------- SiteWatch check-in

CHECKIN = {
    "msg_id": "01HF0000000000000000000001",
    "engineer_id": "E1",
    "ts": TS,
    "lat": 22.543099,
    "lon": 114.057868,
    "acc": 8.5,
    "kind": "checkin",
}


def test_checkin() -> None:
    fix = decode_mqtt("sitewatch/checkin/E1", enc(CHECKIN), now=NOW)
    assert isinstance(fix, Fix)
    assert (fix.msg_id, fix.kind, fix.source, fix.acc_m) == (
        CHECKIN["msg_id"],
        "checkin",
        "checkin",
        8.5,
    )
    assert fix.canonical == canonical_bytes(CHECKIN)
    plain = {k: v for k, v in CHECKIN.items() if k not in ("kind", "acc")}
    fix2 = decode_mqtt("sitewatch/checkin/E1", enc(plain), now=NOW)
    assert fix2.kind == "position" and fix2.acc_m is None  # type: ignore[union-attr]


def test_checkin_topic_mismatch_and_missing_engineer() -> None:
    assert reason("sitewatch/checkin/E2", enc(CHECKIN)) == "topic_mismatch"
    no_id = {k: v for k, v in CHECKIN.items() if k != "engineer_id"}
    assert reason("sitewatch/checkin/E1", enc(no_id)) == "missing_field"


@pytest.mark.parametrize(
    ("crs", "forward"),
    [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09), ("GCJ-02", wgs84_to_gcj02)],
)
def test_checkin_crs_converted_to_wgs84(crs: str, forward: Any) -> None:
    wlon, wlat = 114.057868, 22.543099
    lon, lat = forward(wlon, wlat)
    assert abs(lon - wlon) > 1e-3  # really shifted (~500 m)
    fix = decode_mqtt(
        "sitewatch/checkin/E1", enc({**CHECKIN, "lat": lat, "lon": lon, "crs": crs}), now=NOW
    )
    assert isinstance(fix, Fix)
    assert abs(fix.lon - wlon) < 1e-7 and abs(fix.lat - wlat) < 1e-7
    assert fix.crs == crs.lower().replace("-", "")
    assert json.loads(fix.canonical)["lat"] == lat  # evidence keeps what was sent


def test_checkin_bad_crs_and_kind() -> None:
    assert reason("sitewatch/checkin/E1", enc({**CHECKIN, "crs": "utm"})) == "bad_value"
    assert reason("sitewatch/checkin/E1", enc({**CHECKIN, "crs": 4326})) == "bad_type"
    assert reason("sitewatch/checkin/E1", enc({**CHECKIN, "kind": "lunch"})) == "bad_value"


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (TS, TS),
        (TS + 0.25, TS + 0.25),
        (TS * 1000 + 123, TS + 0.123),
        ("2023-11-14T22:13:20Z", TS),
        ("2023-11-14T22:13:20.500Z", TS + 0.5),
        ("2023-11-15T06:13:20+08:00", TS),
        ("2023-11-15T06:13:20+0800", TS),
        ("2023-11-14T22:13:20", TS),  # naive = UTC
        ("2023-11-14 22:13:20", TS),
        (NOW + 299, NOW + 299),
    ],
)
def test_timestamp_forms(ts: Any, expected: float) -> None:
    fix = decode_mqtt("sitewatch/checkin/E1", enc({**CHECKIN, "ts": ts}), now=NOW)
    assert fix.ts == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("ts", [TS + 0.1234567, TS + 0.9999996, TS * 1000 + 0.0004])
def test_times_are_kept_to_the_microsecond(ts: Any) -> None:
    """What PostgreSQL keeps: a fix read back from `fixes` equals the one the rules saw."""
    fix = decode_mqtt("sitewatch/checkin/E1", enc({**CHECKIN, "ts": ts}), now=NOW)
    us = round(fix.ts * 1e6)
    assert abs(fix.ts * 1e6 - us) < 1e-3  # a whole number of microseconds
    assert dt.datetime.fromtimestamp(fix.ts, dt.UTC).timestamp() == fix.ts


@pytest.mark.parametrize(
    ("ts", "why"),
    [
        (NOW + 301, "future_ts"),
        ((NOW + 3600) * 1000, "future_ts"),
        ("2099-01-01T00:00:00Z", "future_ts"),
        (1e300, "future_ts"),
        (0, "out_of_range"),
        (-5, "out_of_range"),
        (915_148_800, "out_of_range"),  # 1999
        (True, "bad_type"),
        ([TS], "bad_type"),
        ("yesterday", "bad_timestamp"),
        ("1700000000", "bad_timestamp"),
        ("", "missing_field"),
        (None, "missing_field"),
    ],
)
def test_bad_timestamps(ts: Any, why: str) -> None:
    assert reason("sitewatch/checkin/E1", enc({**CHECKIN, "ts": ts})) == why


# ---------------------------------------------------------------- numbers and ranges


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ({"lat": 90.0001}, "out_of_range"),
        ({"lat": -91}, "out_of_range"),
        ({"lon": 180.5}, "out_of_range"),
        ({"lon": -1e308}, "out_of_range"),
        ({"lat": "22.5"}, "bad_type"),
        ({"lat": True}, "bad_type"),
        ({"lon": None}, "missing_field"),
        ({"lat": 10**40}, "out_of_range"),
        ({"acc": -1}, "out_of_range"),
        ({"acc": "5"}, "bad_type"),
        ({"msg_id": 5}, "bad_type"),
        ({"msg_id": ""}, "missing_field"),
        ({"msg_id": "x" * 200}, "out_of_range"),
    ],
)
def test_bad_fields(patch: dict[str, Any], why: str) -> None:
    assert reason("sitewatch/checkin/E1", enc({**CHECKIN, **patch})) == why


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_literals(literal: bytes) -> None:
    payload = enc(CHECKIN).replace(b'"lat": 22.543099', b'"lat": ' + literal)
    assert literal in payload
    assert reason("sitewatch/checkin/E1", payload) in ("bad_json", "bad_type")


def test_envelope_errors() -> None:
    assert reason("sitewatch/checkin/E1", b"x" * (64 * 1024 + 1)) == "too_large"
    assert reason("sitewatch/checkin/E1", b'{"msg_id":"\xff"}') == "bad_encoding"
    assert reason("sitewatch/checkin/E1", b'{"msg_id":"\\ud800"}') == "bad_encoding"
    assert reason("sitewatch/checkin/E1", enc(CHECKIN)[:-5]) == "bad_json"
    assert reason("sitewatch/checkin/E1", b"[1,2]") == "bad_json"
    assert reason("sitewatch/checkin/E1", b"") == "bad_json"
    assert reason("sitewatch/checkin/E1", b"[" * 5000 + b"]" * 5000) == "bad_json"
    nested: Any = 1
    for _ in range(40):
        nested = {"a": nested}
    assert reason("sitewatch/checkin/E1", enc({**CHECKIN, "extra": nested})) == "bad_json"


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "/",
        "sitewatch",
        "sitewatch/checkin",
        "sitewatch/checkin/E1/x",
        "sitewatch/devices/D1",
        "sitewatch/devices/D1/status",
        "owntracks/E1",
        "other/E1/x",
        "sitewatch//E1",
        "owntracks/E1/",
    ],
)
def test_unknown_topics(topic: str) -> None:
    assert reason(topic, enc(CHECKIN)) == "unknown_topic"


# ---------------------------------------------------------------- telemetry and logs


def test_telemetry() -> None:
    body = {
        "msg_id": "t1",
        "ts": TS * 1000,
        "metrics": {"pm25": 35, "noise_db": 61.5, "tilt_deg": -0.2},
        "mac": "ab",
    }
    rec = decode_mqtt("sitewatch/devices/D1/telemetry", enc(body), now=NOW)
    assert isinstance(rec, Telemetry)
    assert rec.metrics == {"pm25": 35.0, "noise_db": 61.5, "tilt_deg": -0.2}
    assert (rec.device_id, rec.ts, rec.lat, rec.lon, rec.mac) == ("D1", TS, None, None, "ab")
    assert rec.canonical == canonical_bytes(body)
    with_pos = decode_mqtt(
        "sitewatch/devices/D1/telemetry", enc({**body, "lat": 22.5, "lon": 114.0}), now=NOW
    )
    assert (with_pos.lat, with_pos.lon) == (22.5, 114.0)  # type: ignore[union-attr]
    heartbeat = decode_mqtt("sitewatch/devices/D1/telemetry", enc({**body, "metrics": {}}), now=NOW)
    assert heartbeat.metrics == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ({"metrics": None}, "missing_field"),
        ({"metrics": [1, 2]}, "bad_type"),
        ({"metrics": {"pm25": "35"}}, "bad_type"),
        ({"metrics": {"pm25": True}}, "bad_type"),
        ({"metrics": {"pm25": None}}, "bad_type"),
        ({"metrics": {"": 1}}, "out_of_range"),
        ({"metrics": {f"m{i}": i for i in range(300)}}, "out_of_range"),
        ({"lat": 22.5}, "missing_field"),
        ({"device_id": "D2"}, "topic_mismatch"),
    ],
)
def test_bad_telemetry(patch: dict[str, Any], why: str) -> None:
    body = {"msg_id": "t1", "ts": TS, "metrics": {"pm25": 35}, **patch}
    assert reason("sitewatch/devices/D1/telemetry", enc(body)) == why


def test_supervision_log() -> None:
    body = {
        "msg_id": "log-1",
        "project_id": "P-440305-001",
        "ts": "2023-11-15T06:13:20+08:00",
        "lat": 22.54,
        "lon": 114.05,
        "text": "今日旁站：三层楼板混凝土浇筑，坍落度抽检合格。",
        "sig": "30440220",
    }
    rec = decode_mqtt("sitewatch/logs/E1", enc(body), now=NOW)
    assert isinstance(rec, SupervisionLog)
    assert (rec.engineer_id, rec.project_id, rec.ts, rec.sig) == (
        "E1",
        "P-440305-001",
        TS,
        "30440220",
    )
    assert rec.text.startswith("今日旁站")
    assert rec.canonical == canonical_bytes(body)
    assert reason("sitewatch/logs/E1", enc({**body, "text": "  "})) == "missing_field"
    assert reason("sitewatch/logs/E1", enc({**body, "text": 5})) == "bad_type"
    assert reason("sitewatch/logs/E1", enc({**body, "engineer_id": "E9"})) == "topic_mismatch"
    assert reason("sitewatch/logs/E1", enc({**body, "project_id": None})) == "missing_field"
    gcj = decode_mqtt("sitewatch/logs/E1", enc({**body, "crs": "gcj02"}), now=NOW)
    assert isinstance(gcj, SupervisionLog)
    assert gcj.crs == "gcj02" and not math.isclose(gcj.lon, 114.05)
