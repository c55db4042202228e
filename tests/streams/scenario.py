"""Helpers of the stream scenario tests: unique sites and engineers, fixes at fixed local
times (2026-03-02 in Asia/Shanghai), one MQTT connection for many messages, waits on SQL."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.stack_client import StackClient, site, wait_until

TZ = ZoneInfo("Asia/Shanghai")
D = 0.001  # half the side of a test site, degrees (~100 m)

# Sites on a grid of their own (north-east of Shenzhen's test sites), a random row per run so
# two runs against one database do not meet either. Rows stay below 22.64 N: the simulator's
# Pingshan and Longgang sites (tests/simulators run first on the shared stack) reach 22.67 N.
_ROW = random.randrange(0, 40)
_CELLS = itertools.count()


def local(h: int, m: int = 0, s: float = 0, day: int = 2) -> float:
    """Epoch seconds of 2026-03-{day} h:m:s local time (Asia/Shanghai, UTC+8)."""
    return dt.datetime(2026, 3, day, h, m, tzinfo=TZ).timestamp() + s


def iso_utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def tag() -> str:
    return uuid.uuid4().hex[:8]


def new_site_xy() -> tuple[float, float]:
    cell = next(_CELLS)
    lon = 114.30 + (cell % 40) * 0.02
    lat = 22.60 + _ROW * 0.001 + (cell // 40) * 0.5
    return round(lon, 6), round(lat, 6)


def off_site(lon: float, lat: float) -> tuple[float, float]:
    """A point about 550 m north of a site, where no test site is."""
    return lon, round(lat + 0.005, 6)


def make_project(
    sw: StackClient, project_id: str, region: str = "440305", **props: Any
) -> tuple[float, float]:
    lon, lat = new_site_xy()
    with sw.api() as api:
        r = api.post(
            "/api/projects", json=site(project_id, lon, lat, region_code=region, d=D, **props)
        )
        assert r.status_code == 201, r.text
    return lon, lat


def make_engineer(sw: StackClient, engineer_id: str, region: str = "440305") -> None:
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": f"工程师{engineer_id[-4:]}",
                "registered_region": region,
                "cert_status": "valid",
            },
        )
        assert r.status_code == 201, r.text


def make_filing(sw: StackClient, engineer_id: str, region: str, start: str, end: str) -> None:
    with sw.api() as api:
        r = api.post(
            "/api/filings",
            json={
                "engineer_id": engineer_id,
                "region_code": region,
                "valid_from": start,
                "valid_to": end,
            },
        )
        assert r.status_code == 201, r.text


def token(sw: StackClient, **body: Any) -> str:
    with sw.api() as api:
        r = api.post("/api/tokens", json=body)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["token"])


def fix(
    engineer_id: str, msg_id: str, ts: float, lon: float, lat: float, acc: float = 5.0
) -> tuple[str, dict[str, Any]]:
    return (
        f"sitewatch/checkin/{engineer_id}",
        {
            "msg_id": msg_id,
            "engineer_id": engineer_id,
            "ts": ts,
            "lat": lat,
            "lon": lon,
            "acc": acc,
        },
    )


def log(
    engineer_id: str, msg_id: str, project_id: str, ts: float, lon: float, lat: float
) -> tuple[str, dict[str, Any]]:
    return (
        f"sitewatch/logs/{engineer_id}",
        {
            "msg_id": msg_id,
            "project_id": project_id,
            "ts": ts,
            "lat": lat,
            "lon": lon,
            "text": "旁站记录",
        },
    )


def telemetry(
    device_id: str, msg_id: str, ts: float, **metrics: float
) -> tuple[str, dict[str, Any]]:
    return (
        f"sitewatch/devices/{device_id}/telemetry",
        {"msg_id": msg_id, "ts": ts, "metrics": metrics},
    )


def publish(sw: StackClient, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish in order over one connection (service identity), QoS 1, each acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set(sw.endpoints["mqtt_username"], sw.endpoints["mqtt_password"])
    client.connect(sw.endpoints["mqtt_host"], int(sw.endpoints["mqtt_port"]))
    client.loop_start()
    try:
        for topic, payload in messages:
            info = client.publish(topic, json.dumps(payload, ensure_ascii=False), qos=1)
            info.wait_for_publish(30)
            assert info.is_published(), f"broker did not acknowledge {topic}"
    finally:
        client.disconnect()
        client.loop_stop()


def wait_rows(
    sw: StackClient, query: str, *params: Any, n: int, timeout_s: float = 60
) -> list[tuple[Any, ...]]:
    """Wait until `query` returns at least `n` rows."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (rows := sw.sql(query, *params)) and len(rows) >= n and rows,
        timeout_s=timeout_s,
        what=f"{n} rows of {query!r} {params}",
    )


def wait_fixes(sw: StackClient, engineer_id: str, n: int) -> None:
    wait_rows(sw, "SELECT msg_id FROM fixes WHERE engineer_id = %s", engineer_id, n=n)


def alerts(sw: StackClient, **filters: Any) -> list[dict[str, Any]]:
    with sw.api() as api:
        r = api.get("/api/alerts", params=filters)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def alert_ids(sw: StackClient, **filters: Any) -> set[str]:
    return {a["id"] for a in alerts(sw, **filters)}
