"""Alert routing (CONTRACT sections 2, 4, 5): an alert is persisted once, pushed on /ws/live
only to callers whose region covers it, listed with the filters of GET /api/alerts, and its
lifecycle open -> acked -> resolved is kept as history."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import websockets

from tests.stack_client import StackClient, wait_until
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


async def _listen(url: str, stop: asyncio.Event, into: list[dict[str, Any]]) -> None:
    async with websockets.connect(url) as ws:
        while not stop.is_set():
            try:
                into.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5)))
            except TimeoutError:
                continue


def test_alert_pushed_only_to_regulators_whose_region_covers_it(sw: StackClient) -> None:
    t = tag()
    p = f"RT-P-{t}"
    lon, lat = make_project(sw, p, region="440305")
    x = f"RT-E-{t}"
    make_engineer(sw, x, region="310104")  # Shanghai engineer on a Shenzhen site
    shenzhen = token(sw, role="regulator", region_code="440300")
    shanghai = token(sw, role="regulator", region_code="310000")
    nanshan = token(sw, role="regulator", region_code="440305")
    alert_id = f"cross_region_unfiled:{x}:{p}:2026-03-02"

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {"sz": [], "sh": [], "ns_region": []}
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(_listen(sw.ws_url(shenzhen), stop, got["sz"])),
            asyncio.create_task(_listen(sw.ws_url(shanghai), stop, got["sh"])),
            # the district's regulator, asking for its district explicitly
            asyncio.create_task(
                _listen(sw.ws_url(nanshan, region="440305"), stop, got["ns_region"])
            ),
        ]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(
            publish,
            sw,
            [fix(x, f"{t}-1", local(9), lon, lat), fix(x, f"{t}-2", local(9, 5), lon, lat)],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (
                any(e.get("id") == alert_id for e in got["sz"])
                and any(e.get("id") == alert_id for e in got["ns_region"])
                and any(
                    e.get("type") == "attendance" and e.get("engineer_id") == x for e in got["sz"]
                )
            ):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # time for a wrong delivery to show up
        stop.set()
        await asyncio.gather(*tasks)
        return got

    got = asyncio.run(scenario())
    pushed = [e for e in got["sz"] if e.get("type") == "alert" and e.get("id") == alert_id]
    assert len(pushed) == 1  # persisted once, pushed once
    assert pushed[0]["alert_type"] == "cross_region_unfiled"
    assert pushed[0]["region_code"] == "440305" and pushed[0]["status"] == "open"
    assert [
        e["id"] for e in got["ns_region"] if e.get("type") == "alert" and e.get("engineer_id") == x
    ] == [alert_id]
    assert [e for e in got["sh"] if e.get("engineer_id") == x] == []  # nothing of it in Shanghai
    # live attendance (coalesced by the worker): 09:00 -> 09:05 on site is 5 minutes
    attendance = [e for e in got["sz"] if e.get("type") == "attendance" and e["engineer_id"] == x]
    assert attendance and attendance[-1]["minutes_on_site"] == 5.0
    assert (attendance[-1]["project_id"], attendance[-1]["date"]) == (p, "2026-03-02")
    wait_fixes(sw, x, 2)
    assert len(sw.sql("SELECT 1 FROM alerts WHERE id = %s", alert_id)) == 1


def test_alert_filters_and_lifecycle_with_history(sw: StackClient) -> None:
    t = tag()
    p = f"LC-P-{t}"
    lon, lat = make_project(sw, p, region="440305")
    x = f"LC-E-{t}"
    make_engineer(sw, x, region="310104")
    publish(
        sw,
        [
            fix(x, f"{t}-1", local(9), lon, lat),
            fix(x, f"{t}-2", local(9, 1), lon, lat + 0.1),  # impossible travel too
        ],
    )
    wait_fixes(sw, x, 2)
    cross = f"cross_region_unfiled:{x}:{p}:2026-03-02"
    travel = f"impossible_travel:{x}:travel:{t}-1:{t}-2"
    shenzhen = token(sw, role="regulator", region_code="440300")
    nanshan = token(sw, role="regulator", region_code="440305")
    shanghai = token(sw, role="regulator", region_code="310000")
    engineer = token(sw, role="engineer", engineer_id=x)

    def ids(tok: str | None = None, **params: Any) -> set[str]:
        with sw.api(tok) as api:
            r = api.get("/api/alerts", params={"engineer_id": x, **params})
            assert r.status_code == 200, r.text
            return {a["id"] for a in r.json()}

    wait_until(lambda: ids() == {cross, travel}, what="both alerts")
    assert ids(type="impossible_travel") == {travel}
    assert ids(region="440300") == {cross, travel}
    assert ids(region="156440305") == {cross, travel}  # the 9-digit form is normalised
    assert ids(region="441000") == set()  # 441000 does not cover 440305 (prefix 4410)
    assert ids(since="2026-03-02T01:00:00Z") == {cross, travel}
    assert ids(since="2026-03-02T01:00:01+00:00") == {travel}
    assert ids(since="2026-03-02T09:00:01+08:00") == {travel}
    assert ids(status="open") == {cross, travel}
    assert ids(shenzhen) == {cross, travel}
    assert ids(shanghai) == set()
    assert ids(engineer) == {cross, travel}  # an engineer sees their own alerts
    with sw.api() as api:
        assert api.get("/api/alerts", params={"status": "closed"}).status_code == 422
        assert api.get("/api/alerts", params={"region": "abc"}).status_code == 422

    # lifecycle: open -> acked -> resolved, every change kept
    with sw.api(shanghai) as api:
        r = api.post(f"/api/alerts/{cross}/ack", json={"note": "不是我的"})
        assert r.status_code == 403, r.text
    with sw.api(engineer) as api:
        assert api.post(f"/api/alerts/{cross}/ack").status_code == 403
    with sw.api(shenzhen) as api:
        r = api.post(f"/api/alerts/{cross}/ack", json={"note": "已联系监理单位"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "acked"
        assert api.post(f"/api/alerts/{cross}/ack").status_code == 409
    assert ids(status="acked") == {cross}
    with sw.api(nanshan) as api:
        r = api.post(f"/api/alerts/{cross}/resolve", json={"note": "备案已补"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "resolved"
        assert [(h["status"], h["note"], h["actor"]) for h in body["history"]] == [
            ("open", None, "system"),
            ("acked", "已联系监理单位", sw.actor(shenzhen)),
            ("resolved", "备案已补", sw.actor(nanshan)),
        ]
        assert api.post(f"/api/alerts/{cross}/resolve").status_code == 409
        assert api.post(f"/api/alerts/{cross}/ack").status_code == 409
        # an unknown id answers a regulator as one outside its region (no existence oracle)
        assert api.post("/api/alerts/no-such-alert/ack").status_code == 403
        with sw.api() as admin:
            assert admin.post("/api/alerts/no-such-alert/ack").status_code == 404
        # open -> resolved directly is allowed too
        r = api.post(f"/api/alerts/{travel}/resolve")
        assert r.status_code == 200 and r.json()["status"] == "resolved"
    assert ids(status="resolved") == {cross, travel}
    assert ids(status="open") == set()


def test_ack_and_resolve_reach_the_maps_of_the_region_live(sw: StackClient) -> None:
    """A regulator acknowledges an alert: every map whose region covers it sees the new status
    at once (the same `alert` message, with status acked, then resolved); other regions see
    nothing."""
    t = tag()
    p = f"LV-P-{t}"
    lon, lat = make_project(sw, p, region="440305")
    x = f"LV-E-{t}"
    make_engineer(sw, x, region="310104")
    alert_id = f"cross_region_unfiled:{x}:{p}:2026-03-02"
    publish(sw, [fix(x, f"{t}-1", local(9), lon, lat)])
    wait_until(lambda: sw.sql("SELECT 1 FROM alerts WHERE id = %s", alert_id), what="the alert")
    shenzhen = token(sw, role="regulator", region_code="440300")
    shanghai = token(sw, role="regulator", region_code="310000")

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {"sz": [], "sh": []}
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(_listen(sw.ws_url(shenzhen), stop, got["sz"])),
            asyncio.create_task(_listen(sw.ws_url(shanghai), stop, got["sh"])),
        ]
        await asyncio.sleep(1.0)

        def act() -> None:
            with sw.api(shenzhen) as api:
                assert api.post(f"/api/alerts/{alert_id}/ack").status_code == 200
                assert api.post(f"/api/alerts/{alert_id}/resolve").status_code == 200

        await asyncio.to_thread(act)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if any(e.get("id") == alert_id and e["status"] == "resolved" for e in got["sz"]):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # time for a wrong delivery to show up
        stop.set()
        await asyncio.gather(*tasks)
        return got

    got = asyncio.run(scenario())
    mine = [e for e in got["sz"] if e.get("type") == "alert" and e.get("id") == alert_id]
    assert [e["status"] for e in mine] == ["acked", "resolved"]
    assert mine[-1]["alert"]["history"][-1]["status"] == "resolved"
    assert mine[-1]["region_code"] == "440305"
    assert [e for e in got["sh"] if e.get("id") == alert_id] == []
