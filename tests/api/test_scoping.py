"""Roles and region scoping (docs/registry.md): what admin, regulators, engineers and vendors
see of projects, engineers, devices, alerts, attendance and tracks, over REST and WebSocket.

The world: a project in 南山区 (440305) and one in 福田区 (440304); an engineer registered
in each district working there, and one registered in 广州市天河区 (440106) checking in at the
南山 site without a filing (so a `cross_region_unfiled` alert of region 440305); a device on
each site. Check-ins go through MQTT with each engineer's own identity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import websockets

from tests.api.conftest import FUTIAN, NANSHAN, feature, register_engineer, spot, tag, token
from tests.stack_client import StackClient, one_local_day, wait_until


@dataclass
class World:
    p_nanshan: str
    p_futian: str
    e_nanshan: str
    e_futian: str
    e_guangzhou: str
    d_nanshan: str
    d_futian: str
    day: str
    spots: dict[str, tuple[float, float]]
    passwords: dict[str, str]


def _checkin(engineer_id: str, lon: float, lat: float, ts: float, n: int) -> dict[str, Any]:
    return {
        "msg_id": f"{engineer_id}-{n}",
        "engineer_id": engineer_id,
        "ts": ts,
        "lat": lat,
        "lon": lon,
        "acc": 5,
        "kind": "checkin" if n == 0 else "position",
    }


@pytest.fixture(scope="module")
def world(sw: StackClient, regions: dict[str, Any]) -> World:
    t = tag()
    w = World(
        p_nanshan=f"SC-PN-{t}",
        p_futian=f"SC-PF-{t}",
        e_nanshan=f"SC-EN-{t}",
        e_futian=f"SC-EF-{t}",
        e_guangzhou=f"SC-EG-{t}",
        d_nanshan=f"SC-DN-{t}",
        d_futian=f"SC-DF-{t}",
        day="",
        spots={"nanshan": spot(NANSHAN), "futian": spot(FUTIAN)},
        passwords={},
    )
    with sw.api() as api:
        for pid, where, members in (
            (w.p_nanshan, "nanshan", [w.e_nanshan, w.e_guangzhou]),
            (w.p_futian, "futian", [w.e_futian]),
        ):
            r = api.post(
                "/api/projects",
                json=feature(
                    pid, *w.spots[where], chief_engineer_id=members[0], engineer_ids=members
                ),
            )
            assert r.status_code == 201, r.text
        for did, pid in ((w.d_nanshan, w.p_nanshan), (w.d_futian, w.p_futian)):
            r = api.post(
                "/api/devices",
                json={"id": did, "project_id": pid, "kind": "env", "report_interval_s": 60},
            )
            assert r.status_code == 201, r.text
    for eid, region in ((w.e_nanshan, "440305"), (w.e_futian, "440304"), (w.e_guangzhou, "440106")):
        w.passwords[eid] = register_engineer(sw, eid, region)
    now = one_local_day(600, 120)  # three check-ins a minute apart, on the day w.day
    w.day = dt.datetime.fromtimestamp(now, ZoneInfo("Asia/Shanghai")).date().isoformat()
    for eid, where in (
        (w.e_nanshan, "nanshan"),
        (w.e_futian, "futian"),
        (w.e_guangzhou, "nanshan"),
    ):
        lon, lat = w.spots[where]
        for n in range(3):
            sw.publish(
                f"sitewatch/checkin/{eid}",
                _checkin(eid, lon, lat, now + 60 * n, n),
                username=eid,
                password=w.passwords[eid],
            )
    wait_until(
        lambda: (
            sw.sql(
                "SELECT count(*) FROM fixes WHERE engineer_id = ANY(%s)",
                [w.e_nanshan, w.e_futian, w.e_guangzhou],
            )[0][0]
            == 9
        ),
        timeout_s=60,
        what="the nine check-ins in PostGIS",
    )
    wait_until(
        lambda: sw.sql(
            "SELECT count(*) FROM alerts WHERE engineer_id = %s AND type = 'cross_region_unfiled'",
            w.e_guangzhou,
        )[0][0],
        timeout_s=60,
        what="the cross-region alert",
    )
    return w


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/api/projects", "/api/engineers", "/api/devices", "/api/alerts", "/api/attendance"],
)
def test_no_or_unknown_token_is_401(sw: StackClient, path: str) -> None:
    with sw.api("sw_not-a-token") as api:
        r = api.get(path)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert "token" in r.json()["detail"]
    with sw.api() as api:
        r = api.get(path, headers={"Authorization": ""})
        assert r.status_code == 401


@pytest.mark.parametrize("role", ["regulator", "engineer", "vendor"])
def test_admin_calls_refuse_other_roles(sw: StackClient, world: Any, role: str) -> None:
    scope = {
        "regulator": {"region_code": "440300"},
        "engineer": {"engineer_id": world.e_nanshan},
        "vendor": {"device_ids": [world.d_nanshan]},
    }[role]
    with sw.api(token(sw, role, **scope)) as api:
        for path, body in (
            ("/api/tokens", {"role": "admin"}),
            ("/api/engineers", {"id": "SC-X", "name": "x"}),
            ("/api/projects", {}),
            ("/api/devices", {}),
            ("/api/filings", {}),
            ("/api/regions/import", {}),
        ):
            r = api.post(path, json=body)
            assert r.status_code in (403, 422), (path, r.text)
            if r.status_code == 403:
                assert "admin" in r.json()["detail"]
        assert api.post("/api/tokens", json={"role": "admin"}).status_code == 403


# --- regulators ----------------------------------------------------------------------------


def _ids(features: list[dict[str, Any]]) -> set[str]:
    return {f["id"] for f in features}


def test_regulator_projects(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        seen = _ids(api.get("/api/projects").json()["features"])
        assert w.p_nanshan in seen and w.p_futian not in seen
        assert all(
            f["properties"]["region_code"].startswith("440305")
            for f in api.get("/api/projects").json()["features"]
        )
        assert api.get(f"/api/projects/{w.p_nanshan}").status_code == 200
        r = api.get(f"/api/projects/{w.p_futian}")
        assert r.status_code == 403 and "outside your region" in r.json()["detail"]
        assert api.get("/api/projects", params={"region": "440304"}).status_code == 403
        assert api.get("/api/projects", params={"region": "440300"}).status_code == 403
        assert w.p_nanshan in _ids(
            api.get("/api/projects", params={"region": "440305"}).json()["features"]
        )
    with sw.api(token(sw, "regulator", region_code="440300")) as api:  # the whole city
        seen = _ids(api.get("/api/projects").json()["features"])
        assert {w.p_nanshan, w.p_futian} <= seen
        narrowed = _ids(api.get("/api/projects", params={"region": "440304"}).json()["features"])
        assert w.p_futian in narrowed and w.p_nanshan not in narrowed
        assert api.get("/api/projects", params={"region": "440100"}).status_code == 403


def test_regulator_engineers(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        seen = {e["id"] for e in api.get("/api/engineers").json()}
        # registered here, or working on a project here (the Guangzhou engineer)
        assert {w.e_nanshan, w.e_guangzhou} <= seen and w.e_futian not in seen
        assert api.get(f"/api/engineers/{w.e_nanshan}").status_code == 200
        assert api.get(f"/api/engineers/{w.e_guangzhou}").status_code == 200
        assert api.get(f"/api/engineers/{w.e_futian}").status_code == 403
        assert api.get("/api/engineers", params={"region": "440304"}).status_code == 403
    with sw.api(token(sw, "regulator", region_code="440100")) as api:  # Guangzhou
        assert api.get(f"/api/engineers/{w.e_guangzhou}").status_code == 200
        assert api.get(f"/api/engineers/{w.e_nanshan}").status_code == 403


def test_regulator_devices(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "regulator", region_code="440304")) as api:
        seen = {d["id"] for d in api.get("/api/devices").json()}
        assert w.d_futian in seen and w.d_nanshan not in seen
        assert api.get(f"/api/devices/{w.d_futian}").status_code == 200
        assert api.get(f"/api/devices/{w.d_nanshan}").status_code == 403
        assert api.get("/api/devices", params={"region": "440305"}).status_code == 403


def test_regulator_alerts(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        alerts = api.get("/api/alerts", params={"engineer_id": w.e_guangzhou}).json()
        assert any(a["type"] == "cross_region_unfiled" for a in alerts)
        assert all(a["region_code"].startswith("440305") for a in api.get("/api/alerts").json())
        assert api.get("/api/alerts", params={"region": "440304"}).status_code == 403
        assert api.get("/api/alerts", params={"region": "440305"}).status_code == 200
    with sw.api(token(sw, "regulator", region_code="440304")) as api:
        assert api.get("/api/alerts", params={"engineer_id": w.e_guangzhou}).json() == []
        alert_id = sw.sql("SELECT id FROM alerts WHERE engineer_id = %s LIMIT 1", w.e_guangzhou)[0][
            0
        ]
        assert api.post(f"/api/alerts/{alert_id}/ack", json={}).status_code == 403
    with sw.api(token(sw, "regulator", region_code="440300")) as api:
        alerts = api.get("/api/alerts", params={"region": "440305"}).json()
        assert any(a["engineer_id"] == w.e_guangzhou for a in alerts)


def test_regulator_attendance(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        rows = api.get("/api/attendance", params={"date": w.day}).json()
        pairs = {(r["engineer_id"], r["project_id"]) for r in rows}
        assert (w.e_nanshan, w.p_nanshan) in pairs and (w.e_guangzhou, w.p_nanshan) in pairs
        assert not any(r["project_id"] == w.p_futian for r in rows)
        assert api.get("/api/attendance", params={"engineer_id": w.e_futian}).json() == []


def test_regulator_track(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        r = api.get(f"/api/engineers/{w.e_guangzhou}/track", params={"date": w.day})
        assert r.status_code == 200 and len(r.json()["features"]) == 3
        r = api.get(f"/api/engineers/{w.e_futian}/track", params={"date": w.day})
        assert r.status_code == 403
    with sw.api(token(sw, "regulator", region_code="440106")) as api:
        # registered in Tianhe but working in Nanshan: the engineer is theirs, the fixes are not
        r = api.get(f"/api/engineers/{w.e_guangzhou}/track", params={"date": w.day})
        assert r.status_code == 200 and r.json()["features"] == []


# --- engineers and vendors -----------------------------------------------------------------


def test_engineer_sees_only_itself(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "engineer", engineer_id=w.e_nanshan)) as api:
        assert [e["id"] for e in api.get("/api/engineers").json()] == [w.e_nanshan]
        assert api.get(f"/api/engineers/{w.e_nanshan}").status_code == 200
        assert api.get(f"/api/engineers/{w.e_futian}").status_code == 403
        assert _ids(api.get("/api/projects").json()["features"]) == {w.p_nanshan}
        assert api.get(f"/api/projects/{w.p_futian}").status_code == 403
        assert {d["id"] for d in api.get("/api/devices").json()} == {w.d_nanshan}
        track = api.get(f"/api/engineers/{w.e_nanshan}/track", params={"date": w.day})
        assert track.status_code == 200 and len(track.json()["features"]) == 3
        other = api.get(f"/api/engineers/{w.e_futian}/track", params={"date": w.day})
        assert other.status_code == 403
        rows = api.get("/api/attendance", params={"date": w.day}).json()
        assert rows and {r["engineer_id"] for r in rows} == {w.e_nanshan}
        assert all(a["engineer_id"] == w.e_nanshan for a in api.get("/api/alerts").json())
        assert api.get("/api/ingest/rejected").status_code == 403


def test_vendor_sees_only_its_devices(sw: StackClient, world: World) -> None:
    w = world
    with sw.api(token(sw, "vendor", device_ids=[w.d_futian])) as api:
        assert [d["id"] for d in api.get("/api/devices").json()] == [w.d_futian]
        assert api.get(f"/api/devices/{w.d_nanshan}").status_code == 403
        assert _ids(api.get("/api/projects").json()["features"]) == {w.p_futian}
        assert api.get(f"/api/projects/{w.p_nanshan}").status_code == 403
        assert api.get("/api/engineers").json() == []
        assert api.get(f"/api/engineers/{w.e_futian}").status_code == 403
        track = api.get(f"/api/engineers/{w.e_futian}/track", params={"date": w.day})
        assert track.status_code == 403
        assert api.get("/api/attendance").json() == []
        assert all(a["device_id"] == w.d_futian for a in api.get("/api/alerts").json())


# --- WebSocket -----------------------------------------------------------------------------


def _close_code(url: str) -> int | None:
    async def run() -> int | None:
        try:
            async with websockets.connect(url) as ws:
                await asyncio.wait_for(ws.recv(), timeout=10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        except websockets.InvalidStatus as refused:
            return refused.response.status_code
        return None

    return asyncio.run(run())


def test_websocket_checks_the_token(sw: StackClient, world: World) -> None:
    assert _close_code(sw.ws_url("sw_not-a-token")) == 4401
    assert _close_code(sw.ws_url("").replace("token=", "x=")) == 4401
    regulator = token(sw, "regulator", region_code="440305")
    assert _close_code(sw.ws_url(regulator, region="440304")) == 4403
    assert _close_code(sw.ws_url(regulator, region="440300")) == 4403


def test_websocket_is_limited_to_the_region(sw: StackClient, world: World) -> None:
    w = world
    nanshan = sw.ws_url(token(sw, "regulator", region_code="440305"))
    futian = sw.ws_url(token(sw, "regulator", region_code="440304"))
    lon, lat = w.spots["nanshan"]
    msg = _checkin(w.e_nanshan, lon, lat, time.time() - 5, 7)

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {"n": [], "f": []}
        async with websockets.connect(nanshan) as ws_n, websockets.connect(futian) as ws_f:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(
                sw.publish,
                f"sitewatch/checkin/{w.e_nanshan}",
                msg,
                username=w.e_nanshan,
                password=w.passwords[w.e_nanshan],
            )

            async def collect(ws: Any, key: str, until: float) -> None:
                while time.monotonic() < until:
                    try:
                        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
                    except TimeoutError:
                        continue
                    if event.get("engineer_id") == w.e_nanshan:
                        got[key].append(event)
                        if key == "n" and event.get("type") == "position":
                            return

            await collect(ws_n, "n", time.monotonic() + 30)
            await collect(ws_f, "f", time.monotonic() + 3)
        return got["n"], got["f"]

    seen_n, seen_f = asyncio.run(run())
    assert any(e["type"] == "position" and e["msg_id"] == msg["msg_id"] for e in seen_n)
    assert seen_f == []
