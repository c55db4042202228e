"""Helpers of the ingest tests on the running stack: registration through the API, Debian's
mosquitto_pub, the rejected log and the fixes table."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from gm.algorithms import canonical_bytes, sign_sm2, sm3_hmac_hex
from tests.stack_client import StackClient, site, wait_until

LON, LAT = 113.9415, 22.5405  # Nanshan, Shenzhen
REGION = "440305"


def tag() -> str:
    return uuid.uuid4().hex[:8]


def register_engineer(
    sw: StackClient, engineer_id: str, *, sm2_public_key: str | None = None
) -> str:
    """Registers the engineer; returns its MQTT password."""
    return str(registration(sw, engineer_id, sm2_public_key=sm2_public_key)["mqtt_password"])


def registration(
    sw: StackClient, engineer_id: str, *, sm2_public_key: str | None = None
) -> dict[str, Any]:
    """Registers the engineer; returns the answer (mqtt_password, osmand_id ...)."""
    body: dict[str, Any] = {
        "id": engineer_id,
        "name": "测试工程师",
        "registered_region": REGION,
        "cert_status": "valid",
    }
    if sm2_public_key:
        body["sm2_public_key"] = sm2_public_key
    with sw.api() as api:
        r = api.post("/api/engineers", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def register_device(sw: StackClient, device_id: str) -> tuple[str, str]:
    """A device on its own new project; returns (hmac_key hex, mqtt_password)."""
    project_id = f"P-{device_id}"
    with sw.api() as api:
        r = api.post("/api/projects", json=site(project_id, LON, LAT, region_code=REGION))
        assert r.status_code == 201, r.text
        r = api.post(
            "/api/devices",
            json={
                "id": device_id,
                "project_id": project_id,
                "kind": "env",
                "report_interval_s": 60,
                "thresholds": {},
            },
        )
    assert r.status_code == 201, r.text
    return str(r.json()["hmac_key"]), str(r.json()["mqtt_password"])


def checkin(engineer_id: str, msg_id: str, **more: Any) -> dict[str, Any]:
    return {
        "msg_id": msg_id,
        "engineer_id": engineer_id,
        "ts": round(time.time() - 30, 3),
        "lat": LAT,
        "lon": LON,
        "acc": 6,
        **more,
    }


def signed(
    obj: dict[str, Any], private_key: str, public_key: str, *, der: bool = True
) -> dict[str, Any]:
    return {
        **obj,
        "sig": sign_sm2(private_key, canonical_bytes(obj), public_key_hex=public_key, der=der),
    }


def maced(obj: dict[str, Any], hmac_key_hex: str) -> dict[str, Any]:
    return {**obj, "mac": sm3_hmac_hex(bytes.fromhex(hmac_key_hex), canonical_bytes(obj))}


def mosquitto_pub(
    sw: StackClient,
    topic: str,
    payload: Any,
    *,
    user: str,
    password: str,
    version: str = "mqttv311",
    tmp: Path | None = None,
) -> None:
    """Publish once at QoS 1 with Debian's mosquitto_pub; bytes go through a file (-f)."""
    cmd = [
        "mosquitto_pub",
        "-V",
        version,
        "-h",
        str(sw.endpoints["mqtt_host"]),
        "-p",
        str(sw.endpoints["mqtt_port"]),
        "-q",
        "1",
        "-u",
        user,
        "-P",
        password,
        "-i",
        f"it-{tag()}",
        "-t",
        topic,
    ]
    if isinstance(payload, bytes):
        assert tmp is not None, "bytes payloads need a temporary directory"
        f = tmp / f"payload-{tag()}.bin"
        f.write_bytes(payload)
        cmd += ["-f", str(f)]
    else:
        body = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        cmd += ["-m", body]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"mosquitto_pub failed: {done.stderr}"


def fix_rows(sw: StackClient, engineer_id: str) -> dict[str, int]:
    """msg_id -> number of rows in the fixes table for this engineer."""
    rows = sw.sql(
        "SELECT msg_id, count(*) FROM fixes WHERE engineer_id = %s GROUP BY msg_id", engineer_id
    )
    return {r[0]: int(r[1]) for r in rows}


def wait_fixes(
    sw: StackClient, engineer_id: str, msg_ids: set[str], *, timeout_s: float = 90
) -> dict[str, int]:
    def ready() -> dict[str, int] | None:
        rows = fix_rows(sw, engineer_id)
        return rows if msg_ids <= set(rows) else None

    return wait_until(  # type: ignore[no-any-return]
        ready, timeout_s=timeout_s, what=f"{len(msg_ids)} fixes of {engineer_id}"
    )


def rejected(sw: StackClient, since: dt.datetime) -> list[dict[str, Any]]:
    with sw.api() as api:
        r = api.get("/api/ingest/rejected", params={"since": since.isoformat(), "limit": 10_000})
    assert r.status_code == 200, r.text
    return list(r.json())


def wait_rejected(
    sw: StackClient,
    since: dt.datetime,
    match: Any,
    *,
    count: int = 1,
    timeout_s: float = 90,
) -> list[dict[str, Any]]:
    """Wait until at least ``count`` rejections since ``since`` satisfy ``match(row)``."""

    def ready() -> list[dict[str, Any]] | None:
        rows = [r for r in rejected(sw, since) if match(r)]
        return rows if len(rows) >= count else None

    return wait_until(ready, timeout_s=timeout_s, what=f"{count} rejections")  # type: ignore[no-any-return]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
