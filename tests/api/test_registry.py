"""The registry calls of CONTRACT section 2: projects, engineers, filings, devices, tokens."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from geofence.coords import bd09_to_wgs84, gcj02_to_wgs84
from gm.algorithms import generate_sm2_keypair
from tests.api.conftest import FUTIAN, NANSHAN, TIANHE, feature, register_engineer, spot, tag
from tests.stack_client import StackClient

# --- projects ------------------------------------------------------------------------------


def test_project_round_trip_and_duplicate(sw: StackClient) -> None:
    pid = f"REG-P-{tag()}"
    lon, lat = spot(NANSHAN)
    body = feature(pid, lon, lat, region_code="440305", contractor="中建三局", buffer_m=20)
    with sw.api() as api:
        r = api.post("/api/projects", json=body)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["type"] == "Feature" and created["id"] == pid
        props = created["properties"]
        assert props["region_code"] == "440305"
        assert props["crs"] == "wgs84" and props["source_crs"] == "wgs84"
        assert props["contractor"] == "中建三局"  # unknown properties are kept
        assert props["buffer_m"] == 20
        assert created["geometry"]["type"] == "MultiPolygon"
        assert api.get(f"/api/projects/{pid}").json() == created
        listed = api.get("/api/projects").json()
        assert listed["type"] == "FeatureCollection"
        assert created in listed["features"]

        again = api.post("/api/projects", json=body)
        assert again.status_code == 409
        assert "already exists" in again.json()["detail"]
        assert api.get("/api/projects/NO-SUCH-PROJECT").status_code == 404


@pytest.mark.parametrize(
    ("place", "code"), [(NANSHAN, "440305"), (FUTIAN, "440304"), (TIANHE, "440106")]
)
def test_project_region_derived_from_geometry(
    sw: StackClient, regions: dict[str, Any], place: tuple[str, float, float], code: str
) -> None:
    pid = f"REG-D-{tag()}"
    with sw.api() as api:
        r = api.post("/api/projects", json=feature(pid, *spot(place)))
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["region_code"] == code
    assert sw.sql("SELECT region_code FROM projects WHERE id = %s", pid) == [(code,)]


def test_project_outside_every_region_needs_region_code(
    sw: StackClient, regions: dict[str, Any]
) -> None:
    with sw.api() as api:
        r = api.post("/api/projects", json=feature(f"REG-X-{tag()}", 10.0, 10.0))
    assert r.status_code == 422
    assert "pass region_code" in r.json()["detail"]


def _ring(*points: tuple[float, float]) -> list[list[list[float]]]:
    return [[list(p) for p in points]]


BAD_SITES: list[tuple[str, Any, str]] = [
    (
        "self-intersecting bow tie",
        {"type": "Polygon", "coordinates": _ring((0, 0), (1, 1), (1, 0), (0, 1), (0, 0))},
        "Self-intersection",
    ),
    (
        "longitude out of range",
        {"type": "Polygon", "coordinates": _ring((200, 22), (201, 22), (201, 23), (200, 22))},
        "out of range",
    ),
    (
        "lat/lon swapped",
        {
            "type": "Polygon",
            "coordinates": _ring((22.5, 113.9), (22.6, 113.9), (22.6, 114.0), (22.5, 113.9)),
        },
        "out of range",
    ),
    (
        "ring not closed",
        {
            "type": "Polygon",
            "coordinates": _ring((10.0, 1.0), (10.1, 1.0), (10.1, 1.1), (10.0, 1.1)),
        },
        "not closed",
    ),
    (
        "too few positions",
        {"type": "Polygon", "coordinates": _ring((10.0, 1.0), (10.1, 1.0), (10.0, 1.0))},
        "at least 4",
    ),
    (
        "empty multipolygon",
        {"type": "MultiPolygon", "coordinates": []},
        "malformed",
    ),
    (
        "a point is not a site",
        {"type": "Point", "coordinates": [113.9, 22.5]},
        "Polygon or MultiPolygon",
    ),
    (
        "coordinates are not numbers",
        {"type": "Polygon", "coordinates": [["a", "b"]]},
        "malformed",
    ),
    ("no geometry", None, "Polygon or MultiPolygon"),
]


@pytest.mark.parametrize(("what", "geometry", "message"), BAD_SITES, ids=[b[0] for b in BAD_SITES])
def test_project_bad_geometry_is_422_naming_the_problem(
    sw: StackClient, what: str, geometry: Any, message: str
) -> None:
    body = {
        "type": "Feature",
        "properties": {"id": f"REG-BAD-{tag()}", "region_code": "440305"},
        "geometry": geometry,
    }
    with sw.api() as api:
        r = api.post("/api/projects", json=body)
    assert r.status_code == 422, (what, r.text)
    assert message in r.json()["detail"], (what, r.json())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"crs": "utm50"}, "crs"),
        ({"region_code": "44030"}, "region_code"),
        ({"region_code": "000000"}, "region_code"),
        ({"id": "has/slash"}, "properties.id"),
        ({"id": None}, "properties.id"),
        ({"engineer_ids": "E-1"}, "engineer_ids"),
        ({"required_days_per_month": 40}, "required_days_per_month"),
        ({"buffer_m": -1}, "buffer_m"),
        ({"name": "nul\u0000byte"}, "NUL"),
    ],
)
def test_project_bad_properties_are_422(
    sw: StackClient, change: dict[str, Any], message: str
) -> None:
    body = feature(f"REG-BP-{tag()}", *spot(NANSHAN), region_code="440305")
    body["properties"].update(change)
    with sw.api() as api:
        r = api.post("/api/projects", json=body)
    assert r.status_code == 422, r.text
    assert message in str(r.json()["detail"])


def test_project_body_not_json_is_422(sw: StackClient) -> None:
    with sw.api() as api:
        r = api.post(
            "/api/projects", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 422
    assert "not JSON" in r.json()["detail"]


@pytest.mark.parametrize(("crs", "convert"), [("gcj02", gcj02_to_wgs84), ("bd09", bd09_to_wgs84)])
def test_project_in_chinese_datum_is_stored_in_wgs84(
    sw: StackClient, regions: dict[str, Any], crs: str, convert: Any
) -> None:
    pid = f"REG-{crs}-{tag()}"
    body = feature(pid, *spot(NANSHAN), crs=crs)
    ring = body["geometry"]["coordinates"][0]
    with sw.api() as api:
        r = api.post("/api/projects", json=body)
    assert r.status_code == 201, r.text
    props = r.json()["properties"]
    assert (props["crs"], props["source_crs"], props["region_code"]) == ("wgs84", crs, "440305")
    stored = r.json()["geometry"]["coordinates"][0][0]
    expected = [convert(lon, lat) for lon, lat in ring]
    assert len(stored) == len(expected)
    for (lon, lat), (ex_lon, ex_lat) in zip(stored, expected, strict=True):
        assert abs(lon - ex_lon) < 1e-7 and abs(lat - ex_lat) < 1e-7
    # the shift is real (hundreds of metres), and PostGIS holds the converted polygon
    assert abs(stored[0][0] - ring[0][0]) > 0.002
    (wkt,) = sw.sql(
        "SELECT ST_AsText(ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1)) FROM projects WHERE id = %s",
        pid,
    )[0]
    lon0, lat0 = (float(v) for v in wkt.removeprefix("POINT(").removesuffix(")").split())
    assert abs(lon0 - expected[0][0]) < 1e-7 and abs(lat0 - expected[0][1]) < 1e-7


# fixes are selected by engineer, day and time, never by space: their GiST index cost every
# insert and every vacuum and served nothing (tests/test_db_plans.py holds that)
# read by their id (a training's place tests the fixes of its window; a project's boundaries
# are loaded whole into the fence index), never searched by a point
NOT_SEARCHED_BY_SPACE = {"fixes", "trainings", "project_boundaries"}


def test_every_geometry_column_searched_by_space_has_a_gist_index(sw: StackClient) -> None:
    columns = sw.sql(
        "SELECT f_table_name, f_geometry_column FROM geometry_columns "
        "WHERE f_table_schema = 'public'"
    )
    assert {c[0] for c in columns} >= {"regions", "projects", "fixes"}
    indexes = sw.sql(
        "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND indexdef ILIKE '%%USING gist%%'"
    )
    for table, column in columns:
        if table not in NOT_SEARCHED_BY_SPACE:
            assert any(t == table and f"({column})" in d for t, d in indexes), (table, column)


# --- engineers -----------------------------------------------------------------------------


def test_engineer_round_trip_masked_and_duplicate(sw: StackClient) -> None:
    eid = f"REG-E-{tag()}"
    _, public_key = generate_sm2_keypair()
    body = {
        "id": eid,
        "name": "李工",
        "registered_region": "156440305",
        "cert_status": "valid",
        "id_number": "440305198807074321",
        "phone": "13912348765",
        "sm2_public_key": "04" + public_key.removeprefix("04"),
        "ce_hours": 32.5,
    }
    with sw.api() as api:
        r = api.post("/api/engineers", json=body)
        assert r.status_code == 201, r.text
        out = r.json()
        assert out["registered_region"] == "440305"  # the 9-digit form is normalised
        assert out["id_number"].endswith("4321") and "198807" not in out["id_number"]
        assert out["phone"].endswith("8765") and "1391234" not in out["phone"]
        assert len(out["mqtt_password"]) >= 16
        assert out["sm2_public_key"] == public_key.removeprefix("04").lower()
        got = api.get(f"/api/engineers/{eid}").json()
        assert "mqtt_password" not in got  # returned only at registration
        assert got == {k: v for k, v in out.items() if k not in ("mqtt_password", "osmand_id")}
        assert got in api.get("/api/engineers").json()
        assert got in api.get("/api/engineers", params={"cert_status": "valid"}).json()
        assert got not in api.get("/api/engineers", params={"cert_status": "expired"}).json()

        again = api.post("/api/engineers", json=body)
        assert again.status_code == 409
        assert "already exists" in again.json()["detail"]
        assert api.get("/api/engineers/NO-SUCH-ENGINEER").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"registered_region": "4403"}, "registered_region"),
        ({"registered_region": "000000"}, "registered_region"),
        ({"cert_status": "revoked"}, "cert_status"),
        ({"id": "E/1"}, "id"),
        ({"id": "E+#"}, "id"),
        ({"id": ""}, "id"),
        ({"name": ""}, "name"),
        ({"ce_hours": -1}, "ce_hours"),
        ({"sm2_public_key": "abcd"}, "sm2_public_key"),
    ],
)
def test_engineer_bad_fields_are_422(sw: StackClient, change: dict[str, Any], field: str) -> None:
    body = {"id": f"REG-EB-{tag()}", "name": "x", "registered_region": "440305"}
    body |= {"cert_status": "valid", **change}
    with sw.api() as api:
        r = api.post("/api/engineers", json=body)
    assert r.status_code == 422, r.text
    assert field in str(r.json()["detail"])


# --- filings -------------------------------------------------------------------------------


def test_filings(sw: StackClient) -> None:
    eid = f"REG-F-{tag()}"
    register_engineer(sw, eid, "440106")
    filing = {
        "engineer_id": eid,
        "region_code": "440305",
        "valid_from": "2026-01-01",
        "valid_to": "2026-12-31",
    }
    with sw.api() as api:
        r = api.post("/api/filings", json=filing)
        assert r.status_code == 201, r.text
        assert r.json()["id"] > 0 and r.json()["region_code"] == "440305"
        unknown = api.post("/api/filings", json={**filing, "engineer_id": "NO-SUCH-ENG"})
        assert unknown.status_code == 422 and "register the engineer" in unknown.json()["detail"]
        reversed_ = api.post("/api/filings", json={**filing, "valid_to": "2025-01-01"})
        assert reversed_.status_code == 422 and "before valid_from" in str(reversed_.json())
        no_project = api.post("/api/filings", json={**filing, "project_id": "NO-SUCH-PROJECT"})
        assert no_project.status_code == 422 and "register the project" in str(no_project.json())
        bad_date = api.post("/api/filings", json={**filing, "valid_from": "2026-02-30"})
        assert bad_date.status_code == 422


# --- devices -------------------------------------------------------------------------------


def test_device_round_trip_and_duplicate(sw: StackClient) -> None:
    pid, did = f"REG-DP-{tag()}", f"REG-D-{tag()}"
    with sw.api() as api:
        assert (
            api.post(
                "/api/projects", json=feature(pid, *spot(NANSHAN), region_code="440305")
            ).status_code
            == 201
        )
        body = {
            "id": did,
            "project_id": pid,
            "kind": "foundation_pit",
            "report_interval_s": 30,
            "thresholds": {"settlement_mm": {"max": 30}, "water_m": {"min": -5, "max": 2}},
        }
        r = api.post("/api/devices", json=body)
        assert r.status_code == 201, r.text
        out = r.json()
        assert len(out["hmac_key"]) == 64 and int(out["hmac_key"], 16) >= 0
        assert len(out["mqtt_password"]) >= 16
        assert out["thresholds"] == body["thresholds"] and out["region_code"] == "440305"
        got = api.get(f"/api/devices/{did}").json()
        assert "hmac_key" not in got and "mqtt_password" not in got
        assert got == {k: v for k, v in out.items() if k not in ("hmac_key", "mqtt_password")}
        assert got in api.get("/api/devices", params={"project_id": pid}).json()
        assert api.post("/api/devices", json=body).status_code == 409
        assert api.get("/api/devices/NO-SUCH-DEVICE").status_code == 404

        given = api.post("/api/devices", json={**body, "id": did + "-k", "hmac_key": "AB" * 16})
        assert given.status_code == 201 and given.json()["hmac_key"] == "ab" * 16
        # the key is kept encrypted, never in clear
        assert sw.sql(
            "SELECT count(*) FROM devices WHERE id = %s AND position(%s in encode(hmac_key_enc, 'escape')) > 0",
            did + "-k",
            "ab" * 16,
        ) == [(0,)]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"project_id": "NO-SUCH-PROJECT"}, "register the project"),
        ({"report_interval_s": 0}, "report_interval_s"),
        ({"thresholds": {"t": {"max": 1, "maxx": 2}}}, "maxx"),
        ({"thresholds": {"t": {"max": "high"}}}, "max"),
        ({"hmac_key": "xyz"}, "hmac_key"),
        ({"id": "D#1"}, "id"),
    ],
)
def test_device_bad_fields_are_422(sw: StackClient, change: dict[str, Any], field: str) -> None:
    body = {"id": f"REG-DB-{tag()}", "project_id": "NO-SUCH-PROJECT", "kind": "crane"}
    body |= {"report_interval_s": 60, **change}
    with sw.api() as api:
        r = api.post("/api/devices", json=body)
    assert r.status_code == 422, r.text
    assert field in str(r.json()["detail"])


# --- tokens --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scope",
    [
        {"role": "admin"},
        {"role": "regulator", "region_code": "440300"},
        {"role": "regulator", "region_code": "156440305"},
        {"role": "engineer", "engineer_id": "{engineer}"},
        {"role": "vendor", "device_ids": ["{device}", "{device2}"]},
    ],
)
def test_tokens_per_role_are_hashed_at_rest(sw: StackClient, scope: dict[str, Any]) -> None:
    from tests.ingest_stack.helpers import register_device, register_engineer

    t = tag()
    names = {"{engineer}": f"TK-E-{t}", "{device}": f"TK-D-{t}", "{device2}": f"TK-D2-{t}"}
    if scope["role"] == "engineer":
        register_engineer(sw, names["{engineer}"])
        scope = {**scope, "engineer_id": names["{engineer}"]}
    if scope["role"] == "vendor":
        register_device(sw, names["{device}"])
        register_device(sw, names["{device2}"])
        scope = {**scope, "device_ids": [names[d] for d in scope["device_ids"]]}
    with sw.api() as api:
        r = api.post("/api/tokens", json=scope)
        assert r.status_code == 201, r.text
        tok = r.json()["token"]
        assert r.json()["role"] == scope["role"]
    digest = hashlib.sha256(tok.encode()).hexdigest()
    rows = sw.sql("SELECT role, region_code FROM tokens WHERE token_hash = %s", digest)
    assert rows and rows[0][0] == scope["role"]
    if "region_code" in scope:
        assert rows[0][1] == scope["region_code"][-6:]
    assert sw.sql("SELECT count(*) FROM tokens WHERE token_hash = %s", tok) == [(0,)]
    with sw.api(tok) as api:
        assert api.get("/api/projects").status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"role": "regulator"}, "region_code"),
        ({"role": "regulator", "region_code": "44"}, "region_code"),
        ({"role": "engineer"}, "engineer_id"),
        ({"role": "vendor"}, "device_ids"),
        ({"role": "vendor", "device_ids": []}, "device_ids"),
        ({"role": "engineer", "engineer_id": "NOBODY-YET"}, "register the engineer first"),
        ({"role": "vendor", "device_ids": ["NO-DEVICE-YET"]}, "register the devices first"),
        ({"role": "root"}, "role"),
    ],
)
def test_token_without_its_scope_is_422(
    sw: StackClient, body: dict[str, Any], message: str
) -> None:
    with sw.api() as api:
        r = api.post("/api/tokens", json=body)
    assert r.status_code == 422
    assert message in str(r.json()["detail"])
