"""Hostile input: every decoder returns a valid record or raises Rejected - nothing else."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wire.codecs import decode_mqtt, decode_osmand, decode_owntracks_http
from wire.records import (
    Fix,
    OwnTracksEvent,
    Reason,
    Rejected,
    SupervisionLog,
    Telemetry,
    from_dict,
    to_dict,
)

NOW = 1_700_000_300.0
TOPICS = [
    "owntracks/E1/phone",
    "owntracks/E1/phone/event",
    "sitewatch/checkin/E1",
    "sitewatch/logs/E1",
    "sitewatch/devices/D1/telemetry",
]
TEMPLATES: dict[str, dict[str, Any]] = {
    "owntracks/E1/phone": {
        "_type": "location",
        "lat": 22.5,
        "lon": 114.0,
        "tst": 1_700_000_000,
        "acc": 5,
        "vel": 3,
        "batt": 50,
    },
    "owntracks/E1/phone/event": {
        "_type": "transition",
        "event": "enter",
        "tst": 1_700_000_000,
        "lat": 1,
        "lon": 2,
        "desc": "A",
    },
    "sitewatch/checkin/E1": {
        "msg_id": "m",
        "engineer_id": "E1",
        "ts": 1_700_000_000,
        "lat": 22.5,
        "lon": 114.0,
        "acc": 3,
        "crs": "gcj02",
        "kind": "checkin",
    },
    "sitewatch/logs/E1": {
        "msg_id": "l",
        "project_id": "P",
        "ts": 1_700_000_000,
        "lat": 22.5,
        "lon": 114.0,
        "text": "ok",
        "crs": "bd09",
    },
    "sitewatch/devices/D1/telemetry": {
        "msg_id": "t",
        "ts": 1_700_000_000,
        "metrics": {"a": 1},
        "lat": 1,
        "lon": 2,
    },
}
RAW_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "true",
    "false",
    "null",
    '"x"',
    '""',
    "[]",
    "{}",
    "123456789012345678901234567890",
    "-0",
    "1e308",
    "-1e308",
    "0.0",
    "1e-320",
    '"\\ud800"',
    '"2023-11-14T22:13:20Z"',
    '"9999-12-31T23:59:59"',
    '"0001-01-01"',
    "99999999999999999999",
    "170000000000000000000",
    '{"a":{"b":[1,{"c":null}]}}',
    '"gcj02"',
    '"bd09"',
    '"enter"',
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=10,
)


def outcome(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        record = fn(*args, **kw)
    except Rejected as exc:
        assert exc.reason in set(Reason), exc.reason
        assert isinstance(exc.message, str) and exc.message
        return exc
    assert isinstance(record, Fix | Telemetry | SupervisionLog | OwnTracksEvent)
    assert math.isfinite(record.ts) and record.ts <= NOW + 300
    if not isinstance(record, OwnTracksEvent):
        lat, lon = record.lat, record.lon
        if isinstance(record, Telemetry):
            assert (lat is None) == (lon is None)
        if lat is not None and lon is not None:
            assert -90 <= lat <= 90 and -180 <= lon <= 180
    assert from_dict(json.loads(json.dumps(to_dict(record)))) == record
    return record


SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    st.sampled_from(TOPICS + ["x/y", "owntracks/a/b/c", "sitewatch/devices/x/telemetry/y"]),
    st.binary(max_size=300),
)
def test_random_bytes(topic: str, payload: bytes) -> None:
    outcome(decode_mqtt, topic, payload, now=NOW)


@SETTINGS
@given(st.sampled_from(TOPICS), st.data())
def test_truncated_payloads(topic: str, data: st.DataObject) -> None:
    payload = json.dumps(TEMPLATES[topic]).encode()
    cut = data.draw(st.integers(0, len(payload)))
    outcome(decode_mqtt, topic, payload[:cut], now=NOW)


@SETTINGS
@given(st.sampled_from(TOPICS), st.data())
def test_raw_token_substitution(topic: str, data: st.DataObject) -> None:
    template = TEMPLATES[topic]
    key = data.draw(st.sampled_from(sorted(template)))
    token = data.draw(st.sampled_from(RAW_TOKENS))
    obj = dict(template)
    obj[key] = "@@TOKEN@@"
    payload = json.dumps(obj).replace('"@@TOKEN@@"', token).encode()
    outcome(decode_mqtt, topic, payload, now=NOW)


@SETTINGS
@given(st.sampled_from(TOPICS), st.data())
def test_wrong_types_and_extra_fields(topic: str, data: st.DataObject) -> None:
    obj = dict(TEMPLATES[topic])
    for key in data.draw(
        st.lists(st.sampled_from(sorted(obj) + ["sig", "mac", "extra", "_type"]), max_size=3)
    ):
        obj[key] = data.draw(JSON_VALUES)
    if data.draw(st.booleans()):
        obj.pop(data.draw(st.sampled_from(sorted(obj))), None)
    try:
        payload = json.dumps(obj).encode()  # NaN/Infinity literals included on purpose
    except (ValueError, UnicodeEncodeError):
        return
    outcome(decode_mqtt, topic, payload, now=NOW)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(TOPICS), st.integers(17, 3000))
def test_deep_nesting(topic: str, depth: int) -> None:
    obj = dict(TEMPLATES[topic])
    obj["extra"] = "@@"
    payload = json.dumps(obj).replace('"@@"', "[" * depth + "]" * depth).encode()
    assert outcome(decode_mqtt, topic, payload, now=NOW).reason == "bad_json"


def test_one_megabyte_payloads() -> None:
    big_string = json.dumps({**TEMPLATES["sitewatch/logs/E1"], "text": "x" * 1_000_000}).encode()
    for topic in TOPICS:
        for payload in (b"{" * 1_000_000, b"\x00" * 1_000_000, big_string):
            assert outcome(decode_mqtt, topic, payload, now=NOW).reason == "too_large"
    assert outcome(decode_owntracks_http, "E1", None, big_string, now=NOW).reason == "too_large"
    assert outcome(decode_osmand, {}, big_string, "application/json", now=NOW).reason == "too_large"
    assert (
        outcome(decode_osmand, {}, b"id=" + b"x" * 1_000_000, None, now=NOW).reason == "too_large"
    )


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "deviceid",
                "lat",
                "lon",
                "location",
                "timestamp",
                "speed",
                "bearing",
                "heading",
                "altitude",
                "accuracy",
                "batt",
                "hdop",
                "crs",
                "sig",
                "valid",
                "x",
            ]
        ),
        st.text(max_size=30)
        | st.sampled_from(["1", "-1", "NaN", "1e999", "22.5,114", "0", "1700000000", "E1"]),
        max_size=10,
    )
)
def test_osmand_random_params(params: dict[str, str]) -> None:
    outcome(decode_osmand, params, None, None, now=NOW)


@SETTINGS
@given(
    st.binary(max_size=300),
    st.sampled_from([None, "application/json", "application/x-www-form-urlencoded", "text/plain"]),
)
def test_osmand_random_bodies(body: bytes, ctype: str | None) -> None:
    outcome(decode_osmand, {}, body, ctype, now=NOW)


@SETTINGS
@given(JSON_VALUES, st.data())
def test_osmand_json_mutations(value: Any, data: st.DataObject) -> None:
    root: dict[str, Any] = {
        "device_id": "E1",
        "location": {
            "timestamp": "2023-11-14T22:13:20Z",
            "coords": {
                "latitude": 1.0,
                "longitude": 2.0,
                "speed": 1,
                "heading": 1,
                "accuracy": 1,
                "altitude": 1,
            },
            "battery": {"level": 0.5, "is_charging": True},
        },
    }
    where = data.draw(st.sampled_from(["root", "location", "coords", "battery"]))
    target = {
        "root": root,
        "location": root["location"],
        "coords": root["location"]["coords"],
        "battery": root["location"]["battery"],
    }[where]
    target[data.draw(st.sampled_from(sorted(target) + ["x"]))] = value
    try:
        body = json.dumps(root).encode()
    except (ValueError, UnicodeEncodeError):
        return
    outcome(decode_osmand, {}, body, "application/json", now=NOW)


@SETTINGS
@given(
    st.text(max_size=20),
    st.none() | st.text(max_size=20),
    st.binary(max_size=200) | st.just(b'{"_type":"location","lat":1,"lon":2,"tst":1700000000}'),
)
def test_owntracks_http_random(user: str, device: str | None, body: bytes) -> None:
    outcome(decode_owntracks_http, user, device, body, now=NOW)


@SETTINGS
@given(st.text(max_size=60), st.binary(max_size=50))
def test_random_topics(topic: str, payload: bytes) -> None:
    outcome(decode_mqtt, topic, payload, now=NOW)
