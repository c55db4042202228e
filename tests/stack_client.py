"""What tests use to talk to a running stack: plain HTTP, paho-mqtt, WebSocket, SQL."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from live_api.auth import hash_token


@dataclass
class StackClient:
    endpoints: dict[str, Any]
    admin_token: str

    @property
    def http(self) -> str:
        return str(self.endpoints["http"])

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.http,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=60,
        )

    @property
    def owner_database(self) -> str:
        """The embedded cluster's superuser (for failure injection: triggers, functions); the
        services log in as `sitewatch_app`, which may not create them."""
        from pathlib import Path

        password = (Path(self.endpoints["data_dir"]) / "secrets" / "pg-owner.secret").read_text()
        info = psycopg.conninfo.conninfo_to_dict(self.endpoints["database"])
        info.update(user="sitewatch", password=password.strip())
        return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]

    def actor(self, token: str) -> str:
        """How the audit log and alert history name a machine token: `token:<id>`."""
        rows = self.sql("SELECT id FROM tokens WHERE token_hash = %s", hash_token(token))
        return f"token:{rows[0][0]}"

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.endpoints["database"]) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def publish(
        self, topic: str, payload: Any, *, username: str | None = None, password: str | None = None
    ) -> None:
        """Publish at QoS 1 and wait until the broker acknowledged it."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.username_pw_set(
            username or self.endpoints["mqtt_username"], password or self.endpoints["mqtt_password"]
        )
        client.connect(self.endpoints["mqtt_host"], int(self.endpoints["mqtt_port"]))
        client.loop_start()
        try:
            body = (
                payload
                if isinstance(payload, bytes | str)
                else json.dumps(payload, ensure_ascii=False)
            )
            info = client.publish(topic, body, qos=1)
            info.wait_for_publish(10)
            assert info.is_published(), f"broker did not acknowledge {topic}"
        finally:
            client.disconnect()
            client.loop_stop()

    def free_spot(
        self, lon: float, lat: float, *, clear_m: float = 600.0, step: float = 0.01
    ) -> tuple[float, float]:
        """The first point of a spiral around (lon, lat) with no project within ``clear_m``.

        Tests share one stack; simulator runs place their own sites at random, so a test
        that asserts the exact projects covering a point must pick a point nobody else used.
        """
        for ring in range(0, 40):
            for dx in range(-ring, ring + 1):
                for dy in range(-ring, ring + 1):
                    if max(abs(dx), abs(dy)) != ring:
                        continue
                    x, y = lon + dx * step, lat + dy * step
                    near = self.sql(
                        "SELECT count(*) FROM projects WHERE ST_DWithin("
                        "geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, %s)",
                        x,
                        y,
                        clear_m,
                    )
                    if near[0][0] == 0:
                        return round(x, 6), round(y, 6)
        raise AssertionError(f"no free spot within 0.4 degrees of {lon}, {lat}")

    def new_engineer(self, prefix: str, **fields: Any) -> dict[str, Any]:
        """Register an engineer (valid certificate, Shenzhen Nanshan) with a fresh id; the
        API's answer, with its MQTT password."""
        body = {
            "id": f"{prefix}-{uuid.uuid4().hex[:8]}",
            "name": "工程师",
            "registered_region": "440305",
            "cert_status": "valid",
            **fields,
        }
        with self.api() as api:
            r = api.post("/api/engineers", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def new_device(self, prefix: str, project_id: str, **fields: Any) -> dict[str, Any]:
        """Register a device (a dust sensor, pm10 at most 150, reporting hourly) of a project
        with a fresh id; the API's answer, with its MQTT password."""
        body = {
            "id": f"{prefix}-{uuid.uuid4().hex[:6]}",
            "project_id": project_id,
            "kind": "dust",
            "report_interval_s": 3600,
            "thresholds": {"pm10": {"max": 150}},
            **fields,
        }
        with self.api() as api:
            r = api.post("/api/devices", json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def check_in(
        self, eng: dict[str, Any], suffix: str, ts: float, lon: float, lat: float, acc: float = 5
    ) -> None:
        """A check-in of a registered engineer (`new_engineer`'s answer) with its own MQTT
        credentials; msg_id `{engineer id}-{suffix}`."""
        self.publish(
            f"sitewatch/checkin/{eng['id']}",
            {
                "msg_id": f"{eng['id']}-{suffix}",
                "engineer_id": eng["id"],
                "ts": ts,
                "lat": lat,
                "lon": lon,
                "acc": acc,
            },
            username=eng["id"],
            password=eng["mqtt_password"],
        )

    def ws_url(self, token: str | None = None, region: str | None = None) -> str:
        url = self.http.replace("http://", "ws://") + f"/ws/live?token={token or self.admin_token}"
        return url + (f"&region={region}" if region else "")


def wait_until(
    check: Callable[[], Any], *, timeout_s: float = 20.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last value {last!r}")


def local_midnight(tz: str = "Asia/Shanghai") -> int:
    """The epoch second the current local day began."""
    local = dt.datetime.now(ZoneInfo(tz))
    return round(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


def one_local_day(ago_s: int, span_s: int, tz: str = "Asia/Shanghai") -> int:
    """A start about `ago_s` seconds back whose next `span_s` seconds fall on one local day:
    when they would cross the last local midnight, they end a minute before it instead."""
    start = round(time.time()) - ago_s
    midnight = local_midnight(tz)
    if start < midnight <= start + span_s:
        return midnight - 60 - span_s
    return start


def square(lon: float, lat: float, d: float = 0.001) -> list[list[list[float]]]:
    return [
        [
            [lon - d, lat - d],
            [lon + d, lat - d],
            [lon + d, lat + d],
            [lon - d, lat + d],
            [lon - d, lat - d],
        ]
    ]


def site(
    project_id: str,
    lon: float,
    lat: float,
    *,
    region_code: str | None = "440305",
    d: float = 0.001,
    **props: Any,
) -> dict[str, Any]:
    properties: dict[str, Any] = {"id": project_id, "name": f"site {project_id}", **props}
    if region_code:
        properties["region_code"] = region_code
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": "Polygon", "coordinates": square(lon, lat, d)},
    }
