"""The worker's timers across worker kills: an offline training credited exactly once
(CONTRACT §6.3: the credit lives in the database, a CE record unique per engineer and training,
so a worker killed before the attendee's last fixes arrive credits them when it is back, and
one killed after credits nobody again), and `notice_overdue` raised once per notice (§6.5),
also for a notice whose deadline passed while no worker ran."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest

from measure import faults as restart
from tests.api.conftest import token
from tests.api.test_notices import issue_notice
from tests.fault.harness import FaultStack
from tests.stack_client import StackClient, site, square, wait_until

pytestmark = pytest.mark.stack

CHECK_INTERVAL_S = 2.0  # SITEWATCH_TRAINING_CHECK_INTERVAL_S (tests/conftest.py)


def test_a_training_is_credited_once_across_worker_kills(fault_stack: FaultStack) -> None:
    fs = fault_stack
    sw = StackClient(fs.stack.endpoints, fs.stack.admin_token)
    lon, lat = sw.free_spot(114.06, 22.62)
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    training_id = f"TRK-{uuid.uuid4().hex[:6]}"
    stayed, left = sw.new_engineer("TRK"), sw.new_engineer("TRK")
    with sw.api() as api:
        r = api.post(
            "/api/trainings",
            json={
                "type": "Feature",
                "properties": {
                    "id": training_id,
                    "name": "旁站监理培训",
                    "starts_at": starts.isoformat(),
                    "ends_at": (starts + dt.timedelta(hours=1)).isoformat(),
                    "hours": 2,
                },
                "geometry": {"type": "Polygon", "coordinates": square(lon, lat)},
            },
        )
    assert r.status_code == 201, r.text  # 48 minutes inside needed

    def publish(eng: dict[str, Any], minutes: range) -> None:
        for m in minutes:
            sw.check_in(eng, str(m), (starts + dt.timedelta(minutes=m)).timestamp(), lon, lat, 10)

    def fixes_of(eng: dict[str, Any]) -> int:
        return int(sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", eng["id"])[0][0])

    def credited() -> list[tuple[Any, ...]]:
        return sw.sql(
            "SELECT engineer_id, hours, ref FROM ce_records WHERE ref = %s ORDER BY id",
            training_id,
        )

    publish(stayed, range(5, 35, 10))  # 5..25: 20 minutes so far
    publish(left, range(5, 45, 10))  # 5..35: 30 minutes, never enough
    wait_until(lambda: fixes_of(stayed) == 3 and fixes_of(left) == 4, timeout_s=90, what="fixes")
    time.sleep(3 * CHECK_INTERVAL_S)  # the worker has looked with these fixes in
    assert credited() == []

    restart.kill9(fs.stack, "worker")
    publish(stayed, range(35, 60, 10))  # 5..55: 50 minutes, sent while no worker runs
    restart.start_component(fs.stack, "worker")
    first = wait_until(credited, timeout_s=120, what="the credit after the restart")
    assert first == [(stayed["id"], 2.0, training_id)]

    restart.kill9(fs.stack, "worker")
    restart.start_component(fs.stack, "worker")
    publish(left, range(45, 46))  # processed: the new worker runs, and so do its timers
    wait_until(lambda: fixes_of(left) == 5, timeout_s=120, what="the new worker")
    time.sleep(3 * CHECK_INTERVAL_S)
    assert credited() == first
    with sw.api() as api:
        shown = api.get(f"/api/trainings/{training_id}").json()
    assert [a["engineer_id"] for a in shown["attendees"]] == [stayed["id"]]


def test_notice_overdue_is_raised_once_per_notice_across_worker_kills(
    fault_stack: FaultStack,
) -> None:
    fs = fault_stack
    sw = StackClient(fs.stack.endpoints, fs.stack.admin_token)
    project_id = f"NTK-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(114.07, 22.63)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    issuer = sw.new_engineer("NTK")
    bearer = token(sw, "engineer", engineer_id=issuer["id"])

    def opened(notice_id: str) -> list[tuple[Any, ...]]:
        return sw.sql(
            "SELECT event FROM alert_events WHERE alert_id = %s ORDER BY seq",
            f"notice_overdue:{notice_id}",
        )

    first = issue_notice(sw, bearer, project_id, lon, lat, time.time() + 2)
    assert wait_until(lambda: opened(first), timeout_s=60, what="the first overdue") == [("open",)]
    restart.kill9(fs.stack, "worker")
    second = issue_notice(sw, bearer, project_id, lon, lat, time.time() + 1)
    time.sleep(3)  # its deadline passes while no worker runs
    restart.start_component(fs.stack, "worker")
    assert wait_until(lambda: opened(second), timeout_s=120, what="the second") == [("open",)]
    restart.kill9(fs.stack, "worker")
    restart.start_component(fs.stack, "worker")
    probe = sw.new_engineer("NTK")
    sw.publish(
        f"sitewatch/checkin/{probe['id']}",
        {"msg_id": "p1", "engineer_id": probe["id"], "ts": time.time(), "lat": lat, "lon": lon},
        username=probe["id"],
        password=probe["mqtt_password"],
    )
    wait_until(
        lambda: sw.sql("SELECT 1 FROM fixes WHERE engineer_id = %s", probe["id"]),
        timeout_s=120,
        what="the restarted worker",
    )
    time.sleep(3 * CHECK_INTERVAL_S)  # its timers ran again
    assert opened(first) == opened(second) == [("open",)]
