"""Offline trainings (CONTRACT §6.3) against the running stack: the engineers whose own fixes
put them inside long enough are credited, once, however often the worker looks again (across
worker restarts: tests/fault/test_training_restart.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from tests.stack_client import StackClient, square, wait_until


def test_a_training_credits_those_who_were_there_long_enough_once(sw: StackClient) -> None:
    lon, lat = sw.free_spot(114.01, 22.58)
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    ends = starts + dt.timedelta(hours=1)  # default minimum: 80 % of 60 minutes = 48
    training_id = f"TR-{uuid.uuid4().hex[:6]}"
    stayed, left, outside = (sw.new_engineer("TR") for _ in range(3))
    with sw.api() as api:
        r = api.post(
            "/api/trainings",
            json={
                "type": "Feature",
                "properties": {
                    "id": training_id,
                    "name": "安全生产培训",
                    "starts_at": starts.isoformat(),
                    "ends_at": ends.isoformat(),
                    "hours": 4,
                },
                "geometry": {"type": "Polygon", "coordinates": square(lon, lat)},
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["min_minutes_present"] == 48
        again = api.post("/api/trainings", content=r.request.content)
        assert again.status_code == 409

    def publish(eng: dict[str, Any], minutes: range, at_lon: float) -> None:
        for m in minutes:
            sw.check_in(
                eng, str(m), (starts + dt.timedelta(minutes=m)).timestamp(), at_lon, lat, 10
            )

    publish(stayed, range(5, 60, 10), lon)  # 5..55: 50 minutes inside
    publish(stayed, range(70, 100, 10), lon)  # after the end: not counted
    publish(left, range(5, 45, 10), lon)  # 5..35: 30 minutes
    publish(outside, range(5, 60, 10), lon + 0.01)  # a kilometre away
    for eng, n in ((stayed, 9), (left, 4), (outside, 6)):
        wait_until(
            lambda e=eng, n=n: (
                sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", e["id"])[0][0] == n
            ),
            timeout_s=90,
            what="the fixes",
        )

    def credited() -> list[tuple[Any, ...]]:
        return sw.sql(
            "SELECT engineer_id, hours, kind, ref, id FROM ce_records WHERE ref = %s", training_id
        )

    first = wait_until(credited, timeout_s=60, what="the credit")
    assert [(e, h, k, r) for e, h, k, r, _ in first] == [
        (stayed["id"], 4.0, "offline", training_id)
    ]
    # registered after it ended: looked at again for an hour from its registration (its
    # fixes may still be coming), then settled; every look credits nobody a second time
    assert sw.sql("SELECT settled_at FROM trainings WHERE id = %s", training_id) == [(None,)]
    sw.sql(
        "UPDATE trainings SET created_at = created_at - interval '61 minutes' WHERE id = %s "
        "RETURNING id",
        training_id,
    )
    wait_until(
        lambda: sw.sql("SELECT settled_at FROM trainings WHERE id = %s", training_id)[0][0],
        timeout_s=60,
        what="settled",
    )
    assert credited() == first
    with sw.api() as api:
        shown = api.get(f"/api/trainings/{training_id}").json()
        ce = api.get(f"/api/engineers/{stayed['id']}/ce-records").json()
    assert [a["engineer_id"] for a in shown["attendees"]] == [stayed["id"]]
    assert [(c["kind"], c["ref"], c["hours"]) for c in ce] == [("offline", training_id, 4.0)]
