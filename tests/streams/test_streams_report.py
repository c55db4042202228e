"""The monthly attendance report of a region as CSV (GET /api/reports/attendance.csv),
regulator-scoped, with hand-computed days and minutes."""

from __future__ import annotations

import csv
import io

from tests.stack_client import StackClient
from tests.streams.scenario import (
    fix,
    local,
    make_engineer,
    make_project,
    publish,
    tag,
    token,
    wait_fixes,
)


def rows(sw: StackClient, tok: str | None, **params: str) -> list[dict[str, str]]:
    with sw.api(tok) as api:
        r = api.get("/api/reports/attendance.csv", params=params)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        return list(csv.DictReader(io.StringIO(r.text)))


def test_monthly_attendance_csv_for_a_region(sw: StackClient) -> None:
    t = tag()
    sz, sh = f"RP-SZ-{t}", f"RP-SH-{t}"
    szlon, szlat = make_project(sw, sz, region="440305", required_days_per_month=20)
    shlon, shlat = make_project(sw, sh, region="310104")
    y, z = f"RP-Y-{t}", f"RP-Z-{t}"
    make_engineer(sw, y)
    make_engineer(sw, z, region="310104")
    messages = []
    # 2026-03-02: 09:00..13:00 every 10 min = 24 gaps of 600 s = 240 min: present
    messages += [fix(y, f"{t}-y2-{i}", local(9, 0, 600 * i), szlon, szlat) for i in range(25)]
    # 2026-03-03: 09:00..10:00 every 10 min = 60 min: not present
    messages += [fix(y, f"{t}-y3-{i}", local(9, 0, 600 * i, day=3), szlon, szlat) for i in range(7)]
    # Z in Shanghai, 2026-03-02, 30 min; and in April (outside the month)
    messages += [fix(z, f"{t}-z-{i}", local(9, 0, 600 * i), shlon, shlat) for i in range(4)]
    messages += [fix(z, f"{t}-z4", local(9) + 31 * 86400, shlon, shlat)]  # 2026-04-02 09:00
    publish(sw, messages)
    wait_fixes(sw, y, 32)
    wait_fixes(sw, z, 5)

    shenzhen = token(sw, role="regulator", region_code="440300")
    shanghai = token(sw, role="regulator", region_code="310000")

    summary = [r for r in rows(sw, shenzhen, month="2026-03") if r["engineer_id"] in (y, z)]
    assert summary == [
        {
            "month": "2026-03",
            "region_code": "440305",
            "project_id": sz,
            "project_name": f"site {sz}",
            "engineer_id": y,
            "engineer_name": f"工程师{y[-4:]}",
            "days_on_site": "2",
            "days_present": "1",
            "minutes_on_site": "300.00",
            "required_days_per_month": "20",
            "meets_requirement": "false",
        }
    ]
    daily = [r for r in rows(sw, shenzhen, month="2026-03", detail="day") if r["engineer_id"] == y]
    assert [
        (r["date"], r["first_in"], r["last_out"], r["minutes_on_site"], r["present"]) for r in daily
    ] == [
        ("2026-03-02", "2026-03-02T09:00:00+08:00", "2026-03-02T13:00:00+08:00", "240.00", "true"),
        ("2026-03-03", "2026-03-03T09:00:00+08:00", "2026-03-03T10:00:00+08:00", "60.00", "false"),
    ]
    # Shanghai's regulator sees Z (no required days: blank) and not Y
    sh_rows = [r for r in rows(sw, shanghai, month="2026-03") if r["engineer_id"] in (y, z)]
    assert [(r["engineer_id"], r["days_on_site"], r["minutes_on_site"]) for r in sh_rows] == [
        (z, "1", "30.00")
    ]
    assert sh_rows[0]["required_days_per_month"] == "" and sh_rows[0]["meets_requirement"] == ""
    april = [r for r in rows(sw, shanghai, month="2026-04", detail="day") if r["engineer_id"] == z]
    assert [r["date"] for r in april] == ["2026-04-02"]
    # an admin names the region; a narrower region of one's own is fine
    assert {r["engineer_id"] for r in rows(sw, None, month="2026-03", region="440305")} >= {y}
    assert z not in {r["engineer_id"] for r in rows(sw, None, month="2026-03", region="440305")}
    assert y in {r["engineer_id"] for r in rows(sw, shenzhen, month="2026-03", region="440305")}

    with sw.api(shenzhen) as api:
        assert (
            api.get(
                "/api/reports/attendance.csv", params={"month": "2026-03", "region": "310000"}
            ).status_code
            == 403
        )
        assert (
            api.get("/api/reports/attendance.csv", params={"month": "2026-13"}).status_code == 422
        )
        assert api.get("/api/reports/attendance.csv", params={"month": "March"}).status_code == 422
        assert api.get("/api/reports/attendance.csv").status_code == 422
    with sw.api(token(sw, role="engineer", engineer_id=y)) as api:
        assert (
            api.get("/api/reports/attendance.csv", params={"month": "2026-03"}).status_code == 403
        )
    with sw.api("not-a-token") as api:
        assert (
            api.get("/api/reports/attendance.csv", params={"month": "2026-03"}).status_code == 401
        )
