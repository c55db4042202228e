"""Check-in/check-out attendance (CONTRACT §6.5) against the running stack: a check-in and the
next check-out at the same project on the same local day count whole; the gaps between fixes
still count outside the shift, and a shift longer than `max_shift_s` does not."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from tests.stack_client import StackClient, site, wait_until

TZ = ZoneInfo("Asia/Shanghai")


def test_a_shift_from_check_in_to_check_out_counts_whole(sw: StackClient) -> None:
    project_id = f"CK-P-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(114.02, 22.59)
    eng_id = f"CK-{uuid.uuid4().hex[:8]}"
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
        r = api.post(
            "/api/engineers",
            json={
                "id": eng_id,
                "name": "打卡",
                "registered_region": "440305",
                "cert_status": "valid",
            },
        )
        assert r.status_code == 201, r.text
        password = r.json()["mqtt_password"]
    day = dt.datetime.now(TZ).date() - dt.timedelta(days=1)
    other = day - dt.timedelta(days=1)

    def at(d: dt.date, h: int, m: int = 0) -> float:
        return dt.datetime.combine(d, dt.time(h, m), TZ).timestamp()

    plan = [
        ("in", at(day, 9), "checkin"),
        ("p1", at(day, 9, 5), "position"),  # inside the shift: adds nothing
        ("out", at(day, 17), "checkout"),  # 09:00-17:00: 480 minutes
        ("p2", at(day, 17, 10), "position"),  # a 10-minute gap after the shift: 490
        ("p3", at(day, 19), "position"),  # 110 minutes later: too long a gap
        ("in2", at(other, 8), "checkin"),  # the day before: a 13-hour "shift", too long
        ("out2", at(other, 21), "checkout"),
    ]
    for msg, ts, kind in plan:
        sw.publish(
            f"sitewatch/checkin/{eng_id}",
            {
                "msg_id": f"{eng_id}-{msg}",
                "engineer_id": eng_id,
                "ts": ts,
                "lat": lat,
                "lon": lon,
                "acc": 5,
                "kind": kind,
            },
            username=eng_id,
            password=password,
        )
    wait_until(
        lambda: (
            sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", eng_id)[0][0] == len(plan)
        ),
        timeout_s=90,
        what="the fixes",
    )
    with sw.api() as api:
        rows = api.get("/api/attendance", params={"engineer_id": eng_id}).json()
    minutes = {r["date"]: r["minutes_on_site"] for r in rows}
    assert minutes == {day.isoformat(): 490, other.isoformat(): 0}
    assert {r["date"]: r["present"] for r in rows} == {
        day.isoformat(): True,
        other.isoformat(): False,
    }
