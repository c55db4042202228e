from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from geofence.coords import wgs84_to_gcj02
from wire.codecs import decode_osmand
from wire.records import Fix, Rejected

NOW = 1_700_000_300.0
TS = 1_700_000_000

# What Traccar Client (Android, classic OsmAnd mode) puts in the query string.
TRACCAR_QUERY = (
    "id=E1&timestamp=1700000000&lat=22.543099&lon=114.057868&speed=10.0&bearing=87.5"
    "&altitude=24.0&accuracy=12.0&batt=85.0"
)


def q(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True))


def rej(params: dict[str, str], body: bytes | None = None, ctype: str | None = None) -> str:
    with pytest.raises(Rejected) as info:
        decode_osmand(params, body, ctype, now=NOW)
    assert info.value.message
    return info.value.reason


def test_traccar_client_query_string() -> None:
    fix = decode_osmand(q(TRACCAR_QUERY), None, None, now=NOW)
    assert isinstance(fix, Fix)
    assert (fix.engineer_id, fix.ts, fix.lat, fix.lon) == ("E1", TS, 22.543099, 114.057868)
    assert fix.speed_kmh == pytest.approx(18.52)  # 10 knots
    assert (fix.acc_m, fix.battery, fix.source, fix.kind) == (12.0, 85.0, "osmand", "position")
    assert fix.msg_id == f"osmand:E1:{TS * 1000}"
    assert json.loads(fix.canonical)["lat"] == "22.543099"


def test_form_body_when_query_is_empty() -> None:
    fix = decode_osmand({}, TRACCAR_QUERY.encode(), "application/x-www-form-urlencoded", now=NOW)
    assert fix == decode_osmand(q(TRACCAR_QUERY), None, None, now=NOW)


def test_deviceid_location_and_empty_values() -> None:
    fix = decode_osmand(
        {"deviceid": "E2", "location": "22.5,114.0", "timestamp": str(TS), "speed": "", "batt": ""},
        None,
        None,
        now=NOW,
    )
    assert (fix.engineer_id, fix.lat, fix.lon, fix.speed_kmh, fix.battery) == (
        "E2",
        22.5,
        114.0,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (str(TS), TS),
        (str(TS * 1000), TS),
        ("2023-11-14T22:13:20Z", TS),
        ("2023-11-14T22:13:20.000+00:00", TS),
        ("2023-11-15T06:13:20+08:00", TS),
        ("2023-11-14 22:13:20", TS),  # Traccar's yyyy-MM-dd HH:mm:ss, read as UTC
        ("141123221320", TS),  # ddMMyyHHmmss
        ("1700000000.5", TS + 0.5),
    ],
)
def test_osmand_timestamp_forms(ts: str, expected: float) -> None:
    fix = decode_osmand({"id": "E1", "lat": "1", "lon": "2", "timestamp": ts}, None, None, now=NOW)
    assert fix.ts == pytest.approx(expected)


def test_missing_timestamp_uses_now() -> None:
    fix = decode_osmand({"id": "E1", "lat": "1", "lon": "2"}, None, None, now=NOW)
    assert fix.ts == NOW


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"lat": "1", "lon": "2"}, "missing_field"),
        ({"id": "E1", "lat": "1"}, "missing_field"),
        ({"id": "E1", "lat": "abc", "lon": "2"}, "bad_type"),
        ({"id": "E1", "lat": "NaN", "lon": "2"}, "bad_type"),
        ({"id": "E1", "lat": "1_0", "lon": "2"}, "bad_type"),
        ({"id": "E1", "lat": "inf", "lon": "2"}, "bad_type"),
        ({"id": "E1", "lat": "95", "lon": "2"}, "out_of_range"),
        ({"id": "E1", "lat": "1", "lon": "-181"}, "out_of_range"),
        ({"id": "E1", "location": "1"}, "bad_type"),
        ({"id": "E1", "lat": "1", "lon": "2", "speed": "fast"}, "bad_type"),
        ({"id": "E1", "lat": "1", "lon": "2", "timestamp": str(TS + 10_000)}, "future_ts"),
        ({"id": "E1", "lat": "1", "lon": "2", "timestamp": "soon"}, "bad_timestamp"),
        ({"id": "E1", "lat": "1", "lon": "2", "accuracy": "-3"}, "out_of_range"),
        ({"id": "x" * 300, "lat": "1", "lon": "2"}, "out_of_range"),
    ],
)
def test_bad_osmand_requests(params: dict[str, str], why: str) -> None:
    assert rej(params) == why


def test_osmand_gcj02_parameter() -> None:
    lon, lat = wgs84_to_gcj02(114.057868, 22.543099)
    fix = decode_osmand(
        {"id": "E1", "lat": repr(lat), "lon": repr(lon), "crs": "gcj02"}, None, None, now=NOW
    )
    assert abs(fix.lon - 114.057868) < 1e-7 and abs(fix.lat - 22.543099) < 1e-7


def test_osmand_sig_parameter_kept_out_of_canonical() -> None:
    fix = decode_osmand({"id": "E1", "lat": "1", "lon": "2", "sig": "abcd"}, None, None, now=NOW)
    assert fix.sig == "abcd" and b"sig" not in fix.canonical


# Traccar Client 9 (transistorsoft background geolocation) JSON body.
TRACCAR9: dict[str, Any] = {
    "location": {
        "event": "motionchange",
        "is_moving": True,
        "uuid": "3e0d6d58-2b0b-4a3e-9a9f-0d1f1a2b3c4d",
        "timestamp": "2023-11-14T22:13:20.000Z",
        "odometer": 1234.5,
        "coords": {
            "latitude": 22.543099,
            "longitude": 114.057868,
            "accuracy": 9.8,
            "speed": 2.5,
            "speed_accuracy": 0.5,
            "heading": 87.5,
            "heading_accuracy": 10,
            "altitude": 24.1,
            "ellipsoidal_altitude": 24.1,
            "altitude_accuracy": 3,
        },
        "activity": {"type": "walking", "confidence": 80},
        "battery": {"is_charging": False, "level": 0.63},
        "extras": {},
    },
    "device_id": "E1",
}


def test_traccar_client_9_json() -> None:
    body = json.dumps(TRACCAR9).encode()
    fix = decode_osmand({}, body, "application/json; charset=utf-8", now=NOW)
    assert (fix.engineer_id, fix.ts, fix.lat, fix.lon, fix.acc_m) == (
        "E1",
        TS,
        22.543099,
        114.057868,
        9.8,
    )
    assert fix.speed_kmh == pytest.approx(9.0)  # 2.5 m/s
    assert fix.battery == pytest.approx(63.0)
    assert fix.msg_id == f"osmand:E1:{TS * 1000}"
    assert json.loads(fix.canonical) == TRACCAR9
    # JSON sniffed even without the content type
    assert decode_osmand({}, body, None, now=NOW) == fix


def _with(**coords: Any) -> bytes:
    location: dict[str, Any] = dict(TRACCAR9["location"])
    loc = {**location, "coords": {**location["coords"], **coords}}
    return json.dumps({**TRACCAR9, "location": loc}).encode()


def test_traccar_client_9_unknown_values() -> None:
    fix = decode_osmand({}, _with(speed=-1, heading=-1, accuracy=-1), "application/json", now=NOW)
    assert fix.speed_kmh is None and fix.acc_m is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (json.dumps({"location": TRACCAR9["location"]}).encode(), "missing_field"),
        (json.dumps({"device_id": "E1"}).encode(), "missing_field"),
        (json.dumps({"device_id": "E1", "location": []}).encode(), "bad_type"),
        (json.dumps({"device_id": 7, "location": TRACCAR9["location"]}).encode(), "bad_type"),
        (_with(latitude=None), "missing_field"),
        (_with(latitude="22.5"), "bad_type"),
        (_with(latitude=99.0), "out_of_range"),
        (b'{"device_id": "E1", "location": {', "bad_json"),
    ],
)
def test_bad_traccar_client_9_json(body: bytes, why: str) -> None:
    assert rej({}, body, "application/json") == why


def test_roundtrip_urlencode() -> None:
    params = {"id": "E_1.a:b@c-d", "lat": "22.5", "lon": "114", "timestamp": "2023-11-14T22:13:20Z"}
    fix = decode_osmand({}, urlencode(params).encode(), None, now=NOW)
    assert fix.engineer_id == "E_1.a:b@c-d"


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"id": "张工"}, "bad_value"),  # ids are ASCII (wire.fields.ID_PATTERN), as registered
        ({"id": ".."}, "bad_value"),
        ({"id": "E1\x00"}, "bad_text"),
        ({"id": "E1\x1b[2J"}, "bad_text"),
        ({"lat": "\u0662\u0662.5"}, "bad_type"),  # Arabic-Indic digits
        ({"lon": "\uff11\uff11\uff14"}, "bad_type"),  # full-width digits
        (
            {
                "timestamp": "\u0661\u0664\u0661\u0661\u0662\u0663\u0662\u0662\u0661\u0663\u0662\u0660"
            },
            "bad_timestamp",
        ),
    ],
)
def test_hostile_query_values(params: dict[str, str], why: str) -> None:
    base = {"id": "E1", "lat": "22.5", "lon": "114", "timestamp": "2023-11-14T22:13:20Z"}
    assert rej({**base, **params}, None, None) == why


def test_json_content_type_with_empty_body_reads_the_query() -> None:
    params = {"id": "E1", "lat": "22.5", "lon": "114", "timestamp": "2023-11-14T22:13:20Z"}
    assert decode_osmand(params, b"", "application/json", now=NOW).engineer_id == "E1"
