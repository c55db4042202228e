"""Projects change (CONTRACT §6.3, §6.5) against the running stack: a boundary revision changes
attendance only from its effective time; a stale If-Match is 412; a suspended project raises
no new attendance; the assignment history says who was chief or member from when to when."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from shapely.geometry import shape

from tests.stack_client import StackClient, site, square, wait_until

TZ = ZoneInfo("Asia/Shanghai")


def _publish(
    sw: StackClient, eng: dict[str, Any], msg: str, at: dt.datetime, lon: float, lat: float
) -> None:
    sw.check_in(eng, msg, at.timestamp(), lon, lat)


def test_a_new_boundary_changes_attendance_only_from_its_effective_time(sw: StackClient) -> None:
    project_id = f"PL-P-{uuid.uuid4().hex[:6]}"
    lon_a, lat = sw.free_spot(113.97, 22.55)
    lon_b = sw.free_spot(lon_a + 0.01, lat)[0]
    day = dt.datetime.now(TZ).date() - dt.timedelta(days=1)
    t = dt.datetime.combine(day, dt.time(11), TZ)  # the new boundary applies from 11:00

    def at(h: int, m: int) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(h, m), TZ)

    eng = sw.new_engineer("PL")
    with sw.api() as api:
        r = api.post("/api/projects", json=site(project_id, lon_a, lat, engineer_ids=[eng["id"]]))
        assert r.status_code == 201, r.text
        r = api.patch(
            f"/api/projects/{project_id}",
            json={
                "geometry": {"type": "Polygon", "coordinates": square(lon_b, lat)},
                "geometry_from": t.isoformat(),
            },
        )
        assert r.status_code == 200, r.text
    # at the old site 10:00, 10:10, 10:20 (on site) and 11:10, 11:20 (the old boundary no
    # longer applies); at the new site 10:40 (not yet) and 11:40, 11:50 (on site)
    plan = [
        ("a1", at(10, 0), lon_a),
        ("a2", at(10, 10), lon_a),
        ("a3", at(10, 20), lon_a),
        ("b0", at(10, 40), lon_b),
        ("a4", at(11, 10), lon_a),
        ("a5", at(11, 20), lon_a),
        ("b1", at(11, 40), lon_b),
        ("b2", at(11, 50), lon_b),
    ]
    for msg, when, lon in plan:
        _publish(sw, eng, msg, when, lon, lat)
    wait_until(
        lambda: (
            sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", eng["id"])[0][0]
            == len(plan)
        ),
        timeout_s=90,
        what="the fixes",
    )
    on_site = dict(
        sw.sql(
            "SELECT right(msg_id, 2), cardinality(project_ids) > 0 FROM fixes WHERE engineer_id = %s",
            eng["id"],
        )
    )
    assert on_site == {
        "a1": True,
        "a2": True,
        "a3": True,
        "b0": False,
        "a4": False,
        "a5": False,
        "b1": True,
        "b2": True,
    }
    with sw.api() as api:
        [row] = api.get(
            "/api/attendance", params={"engineer_id": eng["id"], "date": day.isoformat()}
        ).json()
    # gaps of at most 15 minutes between on-site fixes: 10 + 10 (10:00-10:20), 10:20 -> 11:40
    # is too long, 10 (11:40-11:50)
    assert row["minutes_on_site"] == 30
    assert row["first_in"].startswith(f"{day}T10:00") or row["first_in"].startswith(f"{day}T02:00")
    # the boundary history says which boundary judged which time, and the listing finds
    # the projects that have one
    with sw.api() as api:
        old, new = api.get(f"/api/projects/{project_id}/boundaries").json()
        revised = api.get("/api/projects", params={"revised": "true"}).json()["features"]
        never = api.get("/api/projects", params={"revised": "false"}).json()["features"]
    assert old["valid_from"] is None and new["valid_to"] is None
    assert dt.datetime.fromisoformat(old["valid_to"]) == t
    assert dt.datetime.fromisoformat(new["valid_from"]) == t
    assert shape(old["geometry"]).centroid.x == pytest.approx(lon_a, abs=1e-6)
    assert shape(new["geometry"]).centroid.x == pytest.approx(lon_b, abs=1e-6)
    assert project_id in {f["id"] for f in revised}
    assert project_id not in {f["id"] for f in never}


def test_an_unrevised_project_has_one_boundary_for_all_time(sw: StackClient) -> None:
    project_id = f"PL-U-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.99, 22.57)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
        [only] = api.get(f"/api/projects/{project_id}/boundaries").json()
        missing = api.get("/api/projects/PL-NO-SUCH/boundaries")
        never = api.get("/api/projects", params={"revised": "false"}).json()["features"]
    assert project_id in {f["id"] for f in never}
    assert only["valid_from"] is None and only["valid_to"] is None
    assert shape(only["geometry"]).centroid.x == pytest.approx(lon, abs=1e-6)
    assert missing.status_code == 404


def test_stale_if_match_suspension_and_the_assignment_history(sw: StackClient) -> None:
    project_id = f"PL-S-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.98, 22.56)
    chief, member = sw.new_engineer("PL"), sw.new_engineer("PL")
    with sw.api() as api:
        assert (
            api.post(
                "/api/projects", json=site(project_id, lon, lat, chief_engineer_id=chief["id"])
            ).status_code
            == 201
        )
        tag = api.get(f"/api/projects/{project_id}").headers["etag"]
        r = api.patch(
            f"/api/projects/{project_id}",
            json={"engineer_ids": [member["id"]], "status": "active"},
            headers={"If-Match": tag},
        )
        assert r.status_code == 200, r.text
        stale = api.patch(
            f"/api/projects/{project_id}", json={"name": "x"}, headers={"If-Match": tag}
        )
        assert stale.status_code == 412
        assert (
            api.patch(
                f"/api/projects/{project_id}", json={"chief_engineer_id": "NOBODY-1"}
            ).status_code
            == 422
        )
        assert (
            api.patch(f"/api/projects/{project_id}", json={"chief_engineer_id": None}).status_code
            == 200
        )
        assert (
            api.patch(f"/api/projects/{project_id}", json={"status": "suspended"}).status_code
            == 200
        )
        assignments = api.get(f"/api/projects/{project_id}/assignments").json()
        changes = api.get(f"/api/projects/{project_id}/changes").json()
    assert [(a["engineer_id"], a["role"], a["end"] is None) for a in assignments] == [
        (chief["id"], "chief", False),
        (member["id"], "member", True),
    ]
    assert changes[-1]["changes"]["status"] == ["active", "suspended"]
    now = dt.datetime.now(TZ) - dt.timedelta(minutes=5)
    _publish(sw, member, "s1", now, lon, lat)
    _publish(sw, member, "s2", now + dt.timedelta(minutes=1), lon, lat)
    wait_until(
        lambda: (
            sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", member["id"])[0][0] == 2
        ),
        timeout_s=90,
        what="the member's fixes",
    )
    on_site = sw.sql("SELECT project_ids FROM fixes WHERE engineer_id = %s", member["id"])
    assert on_site == [([],), ([],)]  # suspended: no fence, no attendance
    with sw.api() as api:
        assert api.delete(f"/api/projects/{project_id}").status_code == 204
        assert api.get(f"/api/projects/{project_id}").json()["properties"]["retired_at"]
    # a retired project's messages are turned away (CONTRACT §6.3): the member's log of it
    log_id = f"{member['id']}-log-after"
    sw.publish(
        f"sitewatch/logs/{member['id']}",
        {"msg_id": log_id, "project_id": project_id, "ts": round(time.time()), "text": "巡视"}
        | {"lat": lat, "lon": lon},
        username=member["id"],
        password=member["mqtt_password"],
    )
    wait_until(
        lambda: (
            sw.sql("SELECT reason FROM rejected_messages WHERE excerpt LIKE %s", f"%{log_id}%")
            == [("retired",)]
        ),
        timeout_s=90,  # the gate's directory looks again within 30 s
        what="the retired rejection",
    )


def test_a_chief_present_fewer_days_than_required_last_month_is_absent(sw: StackClient) -> None:
    project_id = f"PL-C-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.99, 22.57)
    chief, member = sw.new_engineer("PL"), sw.new_engineer("PL")
    with sw.api() as api:
        body = site(
            project_id,
            lon,
            lat,
            chief_engineer_id=chief["id"],
            engineer_ids=[member["id"]],
            required_days_per_month=2,
        )
        assert api.post("/api/projects", json=body).status_code == 201
    first = dt.datetime.now(TZ).date().replace(day=1)
    last_month = (first - dt.timedelta(days=1)).replace(day=1)
    # the chief on site 08:00-12:10 on the 3rd (250 minutes: present), the member on the 4th
    for who, n in ((chief, 3), (member, 4)):
        start = dt.datetime.combine(last_month.replace(day=n), dt.time(8), TZ)
        for k in range(26):
            _publish(sw, who, f"c{k}", start + dt.timedelta(minutes=10 * k), lon, lat)
    expected = f"chief_absent:{project_id}:{last_month:%Y-%m}"

    def alert() -> list[Any]:
        return sw.sql(
            "SELECT engineer_id, details->>'present_days' FROM alerts WHERE id = %s", expected
        )

    assert wait_until(alert, timeout_s=120, what="chief_absent") == [(chief["id"], "1")]
    # late fixes: the chief was there on the 5th too (250 minutes), which makes 2 days of
    # the 2 required: once the month is quiet again the alert is retracted, with the reason
    start = dt.datetime.combine(last_month.replace(day=5), dt.time(8), TZ)
    for k in range(26):
        _publish(sw, chief, f"late{k}", start + dt.timedelta(minutes=10 * k), lon, lat)

    def retracted() -> list[Any]:
        return sw.sql(
            "SELECT a.status, h.note FROM alerts a JOIN alert_history h ON h.alert_id = a.id "
            "WHERE a.id = %s AND h.note LIKE 'retracted%%'",
            expected,
        )

    [(status, note)] = wait_until(retracted, timeout_s=120, what="the retraction")
    assert (status, note) == (
        "resolved",
        "retracted: late fixes put the chief there on enough days",
    )
