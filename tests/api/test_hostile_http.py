"""Hostile HTTP against the running stack: each answer is 4xx JSON with a reason a person can
act on, never 5xx; ingest rejections (413 included) reach the rejected log."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.api.conftest import tag
from tests.ingest_stack.helpers import (
    LAT,
    LON,
    registration,
    utcnow,
    wait_fixes,
    wait_rejected,
)
from tests.stack_client import StackClient, square


def assert_json_4xx(r: httpx.Response, *codes: int) -> Any:
    assert r.status_code in codes, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.text[:300]
    return r.json()["detail"]


@pytest.fixture(scope="module")
def engineer(sw: StackClient) -> tuple[str, str, str]:
    """(id, MQTT password, OsmAnd phone id)"""
    eid = f"HH-{tag()}"
    answer = registration(sw, eid)
    return eid, answer["mqtt_password"], answer["osmand_id"]


@pytest.mark.parametrize(
    "query",
    [
        "id=E1%00&lat=22.5&lon=114",
        "id=E1&lat=%D9%A2%D9%A2&lon=114",  # Arabic-Indic digits
        "id=..&lat=22.5&lon=114",
    ],
)
def test_osmand_hostile_queries_are_400_and_logged(sw: StackClient, query: str) -> None:
    since = utcnow()
    r = httpx.get(f"{sw.http}/osmand?{query}", timeout=30)
    detail = assert_json_4xx(r, 400)
    assert detail["reason"] in ("bad_text", "bad_type", "bad_value")
    wait_rejected(
        sw, since, lambda row: row["topic"] == "/osmand" and row["reason"] == detail["reason"]
    )


def test_osmand_get_with_a_json_content_type_and_no_body_reads_the_query(
    sw: StackClient, engineer: tuple[str, str, str]
) -> None:
    eid, _, phone = engineer
    ts = int(time.time()) - 20
    r = httpx.get(
        f"{sw.http}/osmand",
        params={"id": phone, "lat": LAT, "lon": LON, "timestamp": ts},
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    wait_fixes(sw, eid, {f"osmand:{eid}:{ts * 1000}"})


def test_traccar_json_device_id_with_nul(sw: StackClient) -> None:
    body = {
        "device_id": "E1\u0000",
        "location": {
            "timestamp": "2026-01-01T00:00:00Z",
            "coords": {"latitude": 22.5, "longitude": 114.0},
        },
    }
    r = httpx.post(f"{sw.http}/osmand", json=body, timeout=30)
    assert assert_json_4xx(r, 400)["reason"] == "bad_text"


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({"d": "p\u0000"}, {"_type": "lwt", "tst": "{now}"}),
        ({"u": "{eid}", "d": "p"}, {"_type": "lwt", "tst": "{now}", "x": "\u0000"}),
        (
            {"u": "{eid}", "d": "p"},
            {"_type": "transition", "tst": "{now}", "event": "enter", "desc": "gate\u0000"},
        ),
    ],
)
def test_owntracks_http_nul_is_400_not_a_poison_record(
    sw: StackClient, engineer: tuple[str, str, str], params: dict[str, str], body: dict[str, Any]
) -> None:
    eid, password, _ = engineer
    now = int(time.time()) - 10
    q = {k: v.replace("{eid}", eid) for k, v in params.items()}
    b = {k: (now if v == "{now}" else v) for k, v in body.items()}
    r = httpx.post(
        f"{sw.http}/owntracks", params=q, content=json.dumps(b), auth=(eid, password), timeout=30
    )
    assert assert_json_4xx(r, 400)["reason"] == "bad_text"


def test_owntracks_http_user_with_nul_is_not_the_signed_in_one(
    sw: StackClient, engineer: tuple[str, str, str]
) -> None:
    eid, password, _ = engineer
    r = httpx.post(
        f"{sw.http}/owntracks",
        params={"u": f"{eid}\u0000", "d": "p"},
        content=json.dumps({"_type": "lwt", "tst": int(time.time()) - 10}),
        auth=(eid, password),
        timeout=30,
    )
    assert assert_json_4xx(r, 400)["reason"] == "topic_mismatch"
    anonymous = httpx.post(f"{sw.http}/owntracks?u={eid}%00&d=p", content=b"{}", timeout=30)
    assert assert_json_4xx(anonymous, 401)["reason"] == "unauthenticated"


def test_ingest_413_is_logged(sw: StackClient) -> None:
    since = utcnow()
    r = httpx.post(f"{sw.http}/owntracks?u=E1&d=p", content=b"x" * (200 * 1024), timeout=30)
    assert assert_json_4xx(r, 413)["reason"] == "too_large"
    wait_rejected(
        sw, since, lambda row: row["reason"] == "too_large" and row["topic"] == "/owntracks"
    )


def test_api_hostile_paths_queries_and_bodies(sw: StackClient) -> None:
    with sw.api() as api:
        assert "U+0000" in assert_json_4xx(api.get("/api/engineers/E1%00"), 422)
        assert "U+0000" in assert_json_4xx(api.get("/api/alerts", params={"type": "\u0000"}), 422)
        assert "U+001B" in assert_json_4xx(
            api.get("/api/alerts", params={"engineer_id": "\x1b[2J"}), 422
        )
        assert assert_json_4xx(
            api.get("/api/reports/attendance.csv", params={"month": "9999-12"}), 422
        )
        deep: Any = "x"
        for _ in range(900):
            deep = {"a": deep}
        feature = {
            "type": "Feature",
            "properties": {"id": f"deep-{tag()}", "x": deep},
            "geometry": {"type": "Polygon", "coordinates": square(LON, LAT, 0.0003)},
        }
        detail = assert_json_4xx(
            api.post(
                "/api/projects",
                content=json.dumps(feature),
                headers={"content-type": "application/json"},
            ),
            422,
        )
        assert "nested deeper" in detail
        feature["properties"] = {"id": f"big-{tag()}", "blob": "x" * (3 * 1024 * 1024)}
        assert_json_4xx(api.post("/api/projects", json=feature), 413)
        feature["properties"] = {"id": f"nul-{tag()}", "name": "site\u0000"}
        assert "U+0000" in assert_json_4xx(api.post("/api/projects", json=feature), 422)
        lone = b'{"id": "E-x", "name": "\\ud800", "registered_region": "440305", "cert_status": "valid"}'
        detail = assert_json_4xx(
            api.post("/api/engineers", content=lone, headers={"content-type": "application/json"}),
            422,
        )
        assert "surrogate" in detail


def test_ids_differing_only_by_case_are_one_identity(sw: StackClient) -> None:
    t = tag()
    with sw.api() as api:
        lon, lat = LON + 0.02, LAT + 0.02
        body = {
            "type": "Feature",
            "properties": {"id": f"P-dup-{t}", "region_code": "440305"},
            "geometry": {"type": "Polygon", "coordinates": square(lon, lat, 0.0003)},
        }
        assert api.post("/api/projects", json=body).status_code == 201
        body["properties"]["id"] = f"p-DUP-{t}"
        assert "already exists" in assert_json_4xx(api.post("/api/projects", json=body), 409)
        body["properties"]["id"] = ".."
        assert_json_4xx(api.post("/api/projects", json=body), 422)
        eng = {
            "id": f"E-case-{t}",
            "name": "n",
            "registered_region": "440305",
            "cert_status": "valid",
        }
        assert api.post("/api/engineers", json=eng).status_code == 201
        assert_json_4xx(api.post("/api/engineers", json={**eng, "id": f"e-CASE-{t}"}), 409)
        device = {
            "id": f"E-CASE-{t}",
            "project_id": f"P-dup-{t}",
            "kind": "env",
            "report_interval_s": 60,
        }
        assert "engineer" in assert_json_4xx(api.post("/api/devices", json=device), 409)
        for reserved in ("sitewatch-admin", "SiteWatch-Bridge"):
            assert_json_4xx(api.post("/api/engineers", json={**eng, "id": reserved}), 409)
        bad = {**device, "id": f"D-{t}", "thresholds": {"pm10": {"min": 10, "max": 1}}}
        assert "greater than max" in str(assert_json_4xx(api.post("/api/devices", json=bad), 422))
        filing = {
            "engineer_id": f"E-case-{t}",
            "region_code": "440305",
            "valid_from": "0001-01-01",
            "valid_to": "2026-12-31",
        }
        assert_json_4xx(api.post("/api/filings", json=filing), 422)
        crs = {"type": "name", "properties": {"name": "EPSG:3857"}}
        body = {**body, "crs": crs}
        body["properties"] = {"id": f"P-crs-{t}", "region_code": "440305"}
        assert "crs" in assert_json_4xx(api.post("/api/projects", json=body), 422)
        body["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
        assert api.post("/api/projects", json=body).status_code == 201
