"""The walking skeleton, end to end: a check-in published with paho over MQTT is bridged to
Kafka, geofenced by the Faust worker against a project in PostGIS, persisted, and pushed on
the WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import websockets

from tests.stack_client import StackClient, site, wait_until

NEAR = (113.9300, 22.5300)  # Nanshan, Shenzhen (district 440305)


def test_checkin_reaches_websocket_and_postgis(sw: StackClient) -> None:
    tag = uuid.uuid4().hex[:6]
    project_id, engineer_id = f"E2E-P-{tag}", f"E2E-E-{tag}"
    lon, lat = sw.free_spot(*NEAR, step=0.003)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": "端到端",
                "registered_region": "440305",
                "cert_status": "valid",
            },
        )
        assert r.status_code == 201, r.text
        password = r.json()["mqtt_password"]
    msg_id = f"m-{tag}"
    fix = {
        "msg_id": msg_id,
        "engineer_id": engineer_id,
        "ts": time.time() - 5,
        "lat": lat,
        "lon": lon,
        "acc": 8,
    }

    async def scenario() -> list[dict]:
        received: list[dict] = []
        async with websockets.connect(sw.ws_url()) as ws:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(
                sw.publish,
                f"sitewatch/checkin/{engineer_id}",
                fix,
                username=engineer_id,
                password=password,
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    event = json.loads(await asyncio.wait_for(ws.recv(), timeout=1))
                except TimeoutError:
                    continue
                if event.get("engineer_id") == engineer_id:
                    received.append(event)
                    if {e["type"] for e in received} >= {"position", "transition"}:
                        break
        return received

    events = asyncio.run(scenario())
    position = next(e for e in events if e["type"] == "position")
    assert position["msg_id"] == msg_id
    assert position["project_ids"] == [project_id]
    assert (position["lon"], position["lat"]) == (lon, lat)
    transition = next(e for e in events if e["type"] == "transition")
    assert (transition["project_id"], transition["kind"]) == (project_id, "enter")

    rows = wait_until(
        lambda: sw.sql(
            "SELECT msg_id, project_ids, ST_X(geom), ST_Y(geom) FROM fixes WHERE engineer_id = %s",
            engineer_id,
        ),
        what="the fix in PostGIS",
    )
    assert rows == [(msg_id, [project_id], lon, lat)]


def test_unknown_token_is_refused(sw: StackClient) -> None:
    with sw.api("not-a-token") as api:
        assert api.get("/api/projects").status_code == 401
