"""The routes the console added: alerts paged with a total, a date range and a project filter,
notes on alerts; engineers and projects searched and paged; a region's dashboard; a device's
readings; check-in with an engineer's token; attendance over a range of days."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.api.conftest import NANSHAN, TIANHE, feature, register_engineer, spot, tag, token
from tests.stack_client import StackClient, wait_until

pytestmark = pytest.mark.stack


def _device_alert(sw: StackClient, place: tuple[str, float, float]) -> dict[str, Any]:
    """A project at `place` with a device whose one reading crossed its limit: its alert."""
    lon, lat = spot(place)
    project = f"CA-{tag()}"
    with sw.api() as api:
        assert api.post("/api/projects", json=feature(project, lon, lat)).status_code == 201
        registered = sw.new_device("CA-D", project)
        device, password = registered["id"], registered["mqtt_password"]
        sw.publish(
            f"sitewatch/devices/{device}/telemetry",
            {"msg_id": f"{device}-1", "ts": time.time() - 30, "metrics": {"pm10": 400}},
            username=device,
            password=password,
        )
        (alert,) = wait_until(
            lambda: api.get("/api/alerts", params={"device_id": device}).json(), what="alert"
        )
    return {"project": project, "device": device, "password": password, **alert}


def test_alerts_paged_with_a_total_and_filtered(sw: StackClient, regions: Any) -> None:
    sz = [_device_alert(sw, NANSHAN) for _ in range(3)]
    gz = _device_alert(sw, TIANHE)
    shenzhen = token(sw, "regulator", region_code="440300")
    with sw.api(shenzhen) as api:
        whole = api.get("/api/alerts", params={"limit": 10_000})
        total = int(whole.headers["X-Total-Count"])
        assert total == len(whole.json()) and gz["id"] not in {a["id"] for a in whole.json()}
        pages = []
        for offset in range(0, total, 2):
            r = api.get("/api/alerts", params={"limit": 2, "offset": offset})
            assert int(r.headers["X-Total-Count"]) == total
            pages += [a["id"] for a in r.json()]
        assert pages == [a["id"] for a in whole.json()]  # pages tile the list, newest first
        r = api.get("/api/alerts", params={"project_id": sz[0]["project"]})
        assert [a["id"] for a in r.json()] == [sz[0]["id"]] and r.headers["X-Total-Count"] == "1"
        # the other city's project: nothing, and the total says so
        r = api.get("/api/alerts", params={"project_id": gz["project"]})
        assert (r.json(), r.headers["X-Total-Count"]) == ([], "0")
        ts = dt.datetime.fromisoformat(sz[1]["ts"])
        around = {
            "since": (ts - dt.timedelta(seconds=1)).isoformat(),
            "until": (ts + dt.timedelta(seconds=1)).isoformat(),
        }
        assert sz[1]["id"] in [a["id"] for a in api.get("/api/alerts", params=around).json()]
        after = {"since": (ts + dt.timedelta(seconds=1)).isoformat(), "device_id": sz[1]["device"]}
        assert api.get("/api/alerts", params=after).json() == []
    vendor = token(sw, "vendor", device_ids=[sz[2]["device"]])
    with sw.api(vendor) as api:
        r = api.get("/api/alerts")
        assert [a["id"] for a in r.json()] == [sz[2]["id"]] and r.headers["X-Total-Count"] == "1"


def test_a_note_is_kept_in_the_history_and_the_chain(sw: StackClient, regions: Any) -> None:
    alert = _device_alert(sw, NANSHAN)
    with sw.api(token(sw, "regulator", region_code="440300")) as api:
        r = api.post(f"/api/alerts/{alert['id']}/note", json={"note": "已电话联系项目监理"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "open"
        assert r.json()["history"][-1]["status"] == "note"
        assert api.post(f"/api/alerts/{alert['id']}/ack", json={"note": "确认"}).status_code == 200
        for unreadable in ("", "   ", "批准\u202e准批"):  # blank, or reading otherwise than written
            r = api.post(f"/api/alerts/{alert['id']}/note", json={"note": unreadable})
            assert r.status_code == 422, (unreadable, r.text)
        verified = api.get(f"/api/alerts/{alert['id']}/verify").json()
    assert verified["ok"] is True, verified
    with sw.api(token(sw, "regulator", region_code="440100")) as api:
        assert api.post(f"/api/alerts/{alert['id']}/note", json={"note": "x"}).status_code == 403
    with sw.api(token(sw, "vendor", device_ids=[alert["device"]])) as api:
        assert api.post(f"/api/alerts/{alert['id']}/note", json={"note": "x"}).status_code == 403


def test_engineers_and_projects_searched_and_paged(sw: StackClient, regions: Any) -> None:
    mark = tag()
    for k in range(5):
        register_engineer(sw, f"CP-{mark}-{k}", "440305")
    register_engineer(sw, f"CP-{mark}-gz", "440106")
    with sw.api() as api:
        r = api.get("/api/engineers", params={"q": f"cp-{mark}", "limit": 2, "offset": 2})
        assert r.headers["X-Total-Count"] == "6"
        assert [e["id"] for e in r.json()] == [f"CP-{mark}-2", f"CP-{mark}-3"]
        assert (
            api.get("/api/engineers", params={"q": "%"}).headers["X-Total-Count"] == "0"
        )  # literal
    with sw.api(token(sw, "regulator", region_code="440300")) as api:
        r = api.get("/api/engineers", params={"q": mark})
        assert r.headers["X-Total-Count"] == "5" and f"CP-{mark}-gz" not in {
            e["id"] for e in r.json()
        }
    lon, lat = spot(NANSHAN)
    with sw.api() as api:
        for k in range(3):
            api.post(
                "/api/projects",
                json=feature(f"CPP-{mark}-{k}", lon + 0.004 * k, lat, name=f"检索项目{mark}"),
            )
        r = api.get("/api/projects", params={"q": f"检索项目{mark}", "limit": 2})
        assert r.headers["X-Total-Count"] == "3" and len(r.json()["features"]) == 2
        assert api.get("/api/projects", params={"limit": 1001}).status_code == 422


def test_the_dashboard_of_a_region(sw: StackClient, regions: Any) -> None:
    alert = _device_alert(sw, NANSHAN)
    with sw.api(token(sw, "regulator", region_code="440300")) as api:
        figures = api.get("/api/dashboard").json()
        assert figures["region_code"] == "440300"
        assert all(d["code"].startswith("4403") for d in figures["districts"])
        assert any(d["code"] == "440305" and d["name"] == "南山区" for d in figures["districts"])
        assert {a["type"] for a in figures["alerts_by_day"]} >= {"sensor_threshold"}
        assert figures["engineers"]["registered"] >= 1
        assert api.get("/api/dashboard", params={"region": "440100"}).status_code == 403
        narrowed = api.get("/api/dashboard", params={"region": "440305"}).json()
        assert [d["code"] for d in narrowed["districts"]] == ["440305"]
    with sw.api() as api:
        assert api.get("/api/dashboard", params={"days": 0}).status_code == 422
        assert api.get("/api/dashboard", params={"region": "000000"}).status_code == 422
    someone = f"CD-{tag()}"
    register_engineer(sw, someone, "440305")
    for role, scope in (
        ("engineer", {"engineer_id": someone}),
        ("vendor", {"device_ids": [alert["device"]]}),
    ):
        with sw.api(token(sw, role, **scope)) as api:
            assert api.get("/api/dashboard").status_code == 403


def test_a_devices_readings_to_whom_may_see_them(sw: StackClient, regions: Any) -> None:
    alert, other = _device_alert(sw, NANSHAN), _device_alert(sw, NANSHAN)
    device = alert["device"]
    with sw.api(token(sw, "vendor", device_ids=[device])) as api:
        (reading,) = api.get(f"/api/devices/{device}/telemetry").json()
        assert reading["metrics"] == {"pm10": 400}
    with sw.api(token(sw, "vendor", device_ids=[other["device"]])) as api:
        assert api.get(f"/api/devices/{device}/telemetry").status_code in (403, 404)
    with sw.api(token(sw, "regulator", region_code="440100")) as api:
        assert api.get(f"/api/devices/{device}/telemetry").status_code in (403, 404)


def test_check_in_with_an_engineers_token(sw: StackClient, regions: Any) -> None:
    engineer = f"CK-{tag()}"
    register_engineer(sw, engineer, "440305")
    lon, lat = spot(NANSHAN)
    with sw.api() as api:  # a site where the engineer checks in, so the day has attendance
        r = api.post(
            "/api/projects", json=feature(f"CKP-{tag()}", lon, lat, engineer_ids=[engineer])
        )
        assert r.status_code == 201, r.text
    mine = token(sw, "engineer", engineer_id=engineer)
    body = {
        "msg_id": f"web-{tag()}",
        "engineer_id": engineer,
        "ts": time.time(),
        "lat": lat,
        "lon": lon,
        "kind": "checkin",
    }
    with sw.api(mine) as api:
        r = api.post("/api/checkin", json=body)
        assert r.status_code == 200, r.text
        assert r.json() == {"status": "ok", "kind": "checkin"}
        again = api.post(
            "/api/checkin", json=body
        )  # the same msg_id: a replay, refused with its reason
        assert again.status_code == 400 and again.json()["detail"]["reason"] == "replay"
        other = api.post(
            "/api/checkin", json={**body, "msg_id": f"web-{tag()}", "engineer_id": "someone-else"}
        )
        assert other.status_code == 400 and other.json()["detail"]["reason"] == "topic_mismatch"
        bad = api.post("/api/checkin", content=b"{not json")
        assert bad.status_code == 400
    wait_until(
        lambda: sw.sql("SELECT kind FROM fixes WHERE engineer_id = %s", engineer), what="stored"
    )
    with sw.api(token(sw, "regulator", region_code="440300")) as api:
        assert api.post("/api/checkin", json=body).status_code == 403
    day = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    with sw.api(mine) as api:
        rows = api.get(
            "/api/attendance",
            params={
                "engineer_id": engineer,
                "date_from": str(day - dt.timedelta(days=3)),
                "date_to": str(day),
            },
        )
        assert rows.status_code == 200
        assert api.get("/api/attendance", params={"date_from": str(day)}).status_code == 422
        too_long = {"date_from": str(day - dt.timedelta(days=200)), "date_to": str(day)}
        assert api.get("/api/attendance", params=too_long).status_code == 422
        mine_today = api.get("/api/attendance", params={"date": str(day)}).json()
        assert mine_today and {r["engineer_id"] for r in mine_today} == {engineer}
        assert api.get("/api/attendance", params={"engineer_id": "someone-else"}).json() == []


def test_the_console_is_served_with_a_strict_policy(sw: StackClient) -> None:
    with sw.api() as api:
        page = api.get("/console/")
        root = api.get("/", follow_redirects=False)
    assert page.status_code == 200 and '<div id="app">' in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'self'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert (root.status_code, root.headers["location"]) == (307, "/console/")
