"""The certificate's history and continuing education against the running stack (CONTRACT
§6.3, §6.5): a suspension dated D raises `practice_while_suspended` for on-site fixes from D on
and nothing before; eligibility reads the certificate and the CE records as of the day asked
about and names the record behind each reason."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from tests.stack_client import StackClient, site, wait_until

TZ = ZoneInfo("Asia/Shanghai")


def _engineer(sw: StackClient, **extra: Any) -> dict[str, Any]:
    body = {
        "id": f"CE-{uuid.uuid4().hex[:8]}",
        "name": "证书",
        "registered_region": "440305",  # the sites are in Shenzhen Nanshan: no cross-region
        "cert_status": "valid",
        **extra,
    }
    with sw.api() as api:
        r = api.post("/api/engineers", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _noon(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(12), TZ).timestamp()


def test_a_suspension_from_day_d_raises_for_fixes_from_d_on_only(sw: StackClient) -> None:
    today = dt.datetime.now(TZ).date()
    d = today - dt.timedelta(days=2)
    project_id = f"CE-P-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.95, 22.53)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    eng = _engineer(sw)
    with sw.api() as api:
        r = api.patch(
            f"/api/engineers/{eng['id']}",
            json={"cert_status": "suspended", "cert_status_from": d.isoformat()},
        )
        assert r.status_code == 200, r.text
    for i, day in enumerate((d - dt.timedelta(days=1), d, d + dt.timedelta(days=1))):
        sw.publish(
            f"sitewatch/checkin/{eng['id']}",
            {
                "msg_id": f"{eng['id']}-{i}",
                "engineer_id": eng["id"],
                "ts": _noon(day),
                "lat": lat,
                "lon": lon,
                "acc": 5,
            },
            username=eng["id"],
            password=eng["mqtt_password"],
        )

    def alerts() -> list[str]:
        return sorted(
            r[0]
            for r in sw.sql(
                "SELECT id FROM alerts WHERE engineer_id = %s AND type = 'practice_while_suspended'",
                eng["id"],
            )
        )

    expected = [
        f"practice_while_suspended:{eng['id']}:{project_id}:{day.isoformat()}"
        for day in (d, d + dt.timedelta(days=1))
    ]
    wait_until(lambda: alerts() == expected, timeout_s=90, what="two practice_while_suspended")
    wait_until(
        lambda: sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", eng["id"])[0][0] == 3,
        timeout_s=60,
        what="the three fixes",
    )
    assert alerts() == expected  # the fix of the day before D raised nothing


def test_eligibility_follows_the_ce_records_and_the_certificate_by_date(
    sw: StackClient,
) -> None:
    project_id = f"CE-EP-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.96, 22.54)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    eng = _engineer(sw, ce_hours=6)
    today = dt.datetime.now(TZ).date()
    ask = {"engineer_id": eng["id"], "project_id": project_id, "role": "member"}
    with sw.api() as api:
        first = api.post("/api/eligibility", json=ask).json()
        assert first["reasons"] == ["ce_hours_insufficient"]
        [declared] = api.get(f"/api/engineers/{eng['id']}/ce-records").json()
        assert (declared["kind"], declared["hours"], declared["year"]) == (
            "declared",
            6,
            today.year,
        )
        assert first["details"][0]["decided_by"] == (
            f"continuing-education records of {today.year}: {declared['id']}"
        )
        record = {"year": today.year, "hours": 18, "kind": "offline", "ref": "培训-2026-07"}
        added = api.post(f"/api/engineers/{eng['id']}/ce-records", json=record)
        assert added.status_code == 201, added.text
        again = api.post(f"/api/engineers/{eng['id']}/ce-records", json=record)
        assert (again.status_code, again.json()["id"]) == (200, added.json()["id"])
        assert api.post("/api/eligibility", json=ask).json()["eligible"] is True  # 6 + 18 = 24
        last_year = api.post(
            "/api/eligibility", json={**ask, "on": f"{today.year - 1}-06-30"}
        ).json()
        assert last_year["reasons"] == ["ce_hours_insufficient"]
        assert last_year["details"][0]["decided_by"] == (
            f"no continuing-education records of {today.year - 1}"
        )
        r = api.patch(
            f"/api/engineers/{eng['id']}",
            json={"cert_status": "suspended", "cert_status_from": today.isoformat()},
        )
        assert r.status_code == 200, r.text
        now = api.post("/api/eligibility", json=ask).json()
        yesterday = api.post(
            "/api/eligibility", json={**ask, "on": (today - dt.timedelta(days=1)).isoformat()}
        ).json()
        bad = api.post(f"/api/engineers/{eng['id']}/ce-records", json={**record, "hours": 0})
        assert bad.status_code == 422
        listed = api.get(f"/api/engineers/{eng['id']}/ce-records").json()
    assert now["reasons"] == ["cert_not_valid"]
    assert now["details"][0]["decided_by"].startswith(f"status suspended from {today}")
    assert yesterday["eligible"] is True  # the suspension applies from today
    assert [r["hours"] for r in listed] == [6, 18]
