"""Attendance and tracks on the real stack, with hand-computed minutes (CONTRACT section 4):
a fix on the polygon edge counts, a gap of exactly max_gap_s (900 s) counts and 901 s does
not, an inaccurate fix is not on site, and out-of-order delivery gives the same result, on
REST (from the stored fixes) and live (the worker's tallies, rules.attendance)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from websockets.sync.client import connect

from tests.stack_client import StackClient
from tests.streams.scenario import (
    D,
    fix,
    local,
    make_engineer,
    make_project,
    off_site,
    publish,
    tag,
    wait_fixes,
)

# (name, local time, where, accuracy); where: "in", "edge" (east edge), "out" (550 m north)
SCRIPT = [
    ("a", (9, 0, 0), "in", 5.0),
    ("b", (9, 10, 0), "in", 5.0),
    ("c", (9, 20, 0), "edge", 5.0),
    ("d", (9, 35, 1), "in", 5.0),  # 901 s after c: that gap does not count
    ("e", (9, 45, 0), "in", 5.0),  # 599 s after d
    ("f", (10, 0, 0), "in", 5.0),  # exactly 900 s after e: counts
    ("g", (10, 5, 0), "in", 150.0),  # accuracy 150 m > 100 m: not on site
    ("h", (10, 20, 0), "out", 5.0),
]
# 600 (a-b) + 600 (b-c) + 599 (d-e) + 900 (e-f) = 2699 s
EXPECTED_MINUTES = round(2699 / 60, 2)  # 44.98


def messages(engineer_id: str, t: str, lon: float, lat: float, order: str) -> list[Any]:
    by_name = {}
    for name, (h, m, s), where, acc in SCRIPT:
        x, y = {"in": (lon, lat), "edge": (lon + D, lat), "out": off_site(lon, lat)}[where]
        by_name[name] = fix(engineer_id, f"{t}-{name}", local(h, m, s), x, y, acc)
    return [by_name[n] for n in order]


def live_attendance(live: Any, engineers: set[str], minutes: float) -> dict[str, Any]:
    """The live attendance messages of `engineers` until each has reached `minutes` (the
    worker pushes them coalesced, every couple of seconds); the last one of each."""
    last: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(last) == len(engineers) and all(
            m["minutes_on_site"] == minutes for m in last.values()
        ):
            return last
        try:
            message = json.loads(live.recv(timeout=1.0))
        except TimeoutError:
            continue
        if message.get("type") == "attendance" and message["engineer_id"] in engineers:
            last[message["engineer_id"]] = message
    raise AssertionError(f"live attendance never reached {minutes} minutes: {last}")


def test_attendance_minutes_boundaries_and_out_of_order(sw: StackClient) -> None:
    t = tag()
    project = f"ATT-P-{t}"
    in_order, shuffled = f"ATT-E1-{t}", f"ATT-E2-{t}"
    lon, lat = make_project(sw, project)
    make_engineer(sw, in_order)
    make_engineer(sw, shuffled)
    with connect(sw.ws_url()) as live:
        # in two parts: the second is counted on the worker's tally (the 901 s gap c-d)
        publish(sw, messages(in_order, t + "1", lon, lat, "abc"))
        wait_fixes(sw, in_order, 3)
        publish(sw, messages(in_order, t + "1", lon, lat, "defgh"))
        # out of order, but never later than allowed_lateness_s (3600 s) behind the newest fix
        publish(sw, messages(shuffled, t + "2", lon, lat, "ecafdbgh"))
        wait_fixes(sw, in_order, 8)
        wait_fixes(sw, shuffled, 8)
        pushed = live_attendance(live, {in_order, shuffled}, EXPECTED_MINUTES)
    for engineer_id in (in_order, shuffled):
        row = pushed[engineer_id]
        assert (row["project_id"], row["date"], row["present"]) == (project, "2026-03-02", False)
        assert dt.datetime.fromisoformat(row["first_in"]) == dt.datetime(
            2026, 3, 2, 1, tzinfo=dt.UTC
        )
        assert dt.datetime.fromisoformat(row["last_out"]) == dt.datetime(
            2026, 3, 2, 2, tzinfo=dt.UTC
        )

    with sw.api() as api:
        for engineer_id in (in_order, shuffled):
            r = api.get("/api/attendance", params={"engineer_id": engineer_id})
            assert r.status_code == 200, r.text
            assert r.json() == [
                {
                    "engineer_id": engineer_id,
                    "project_id": project,
                    "date": "2026-03-02",
                    "first_in": "2026-03-02T01:00:00Z",
                    "last_out": "2026-03-02T02:00:00Z",
                    "minutes_on_site": EXPECTED_MINUTES,
                    "present": False,
                }
            ]
        # the filters of CONTRACT section 2
        r = api.get(
            "/api/attendance",
            params={"engineer_id": in_order, "project_id": project, "date": "2026-03-02"},
        )
        assert [x["minutes_on_site"] for x in r.json()] == [EXPECTED_MINUTES]
        assert (
            api.get(
                "/api/attendance", params={"engineer_id": in_order, "date": "2026-03-03"}
            ).json()
            == []
        )
        by_project = api.get("/api/attendance", params={"project_id": project}).json()
        assert {x["engineer_id"] for x in by_project} == {in_order, shuffled}
        assert api.get("/api/attendance", params={"date": "2026-13-01"}).status_code == 422

        # the track: that local day's accepted fixes in time order, whatever the arrival order
        for engineer_id, t2 in ((in_order, t + "1"), (shuffled, t + "2")):
            r = api.get(f"/api/engineers/{engineer_id}/track", params={"date": "2026-03-02"})
            assert r.status_code == 200, r.text
            features = r.json()["features"]
            assert [f["properties"]["msg_id"] for f in features] == [
                f"{t2}-{n}" for n in "abcdefgh"
            ]
            projects = {
                f["properties"]["msg_id"][-1]: f["properties"]["project_ids"] for f in features
            }
            assert projects["c"] == [project]  # on the edge
            assert projects["g"] == [] and projects["h"] == []
            assert features[2]["geometry"]["coordinates"] == [lon + D, lat]
        assert (
            api.get(f"/api/engineers/{in_order}/track", params={"date": "2026-03-03"}).json()[
                "features"
            ]
            == []
        )

    # transitions: the same net set whatever the order (the late ones retracted and redone)
    for engineer_id, t2 in ((in_order, t + "1"), (shuffled, t + "2")):
        rows = sw.sql(
            "SELECT kind, msg_id FROM transitions WHERE engineer_id = %s ORDER BY ts", engineer_id
        )
        assert rows == [("enter", f"{t2}-a"), ("exit", f"{t2}-h")]
    # nobody left their city and no day has closed: no alerts at all
    assert sw.sql("SELECT id FROM alerts WHERE engineer_id IN (%s, %s)", in_order, shuffled) == []
