"""Alert rows and the live messages of alerts, with the time and WKT helpers the batch rules share."""

from __future__ import annotations

import datetime as dt
from typing import Any


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def point_wkt(lon: float, lat: float) -> str:
    return f"SRID=4326;POINT({lon!r} {lat!r})"


def alert(
    alert_id: str,
    type_: str,
    region_code: str,
    ts: dt.datetime,
    *,
    engineer_id: str | None = None,
    device_id: str | None = None,
    project_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An alert row. `alert_id` is the alert's identity (CONTRACT section 4): the same
    situation always gives the same id, so a redelivered batch inserts nothing new."""
    return {
        "id": alert_id,
        "type": type_,
        "status": "open",
        "region_code": region_code,
        "engineer_id": engineer_id,
        "device_id": device_id,
        "project_id": project_id,
        "ts": ts,
        "details": details or {},
    }


def public_alert(a: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in a.items()}


def live_alert(a: dict[str, Any]) -> dict[str, Any]:
    """The live message of an alert, new or changed (ack, resolve). The alert's own `type` is
    kept as `alert_type` (and in the full `alert`), so it cannot overwrite the message type;
    the hub filters on the top-level `region_code`/`engineer_id`/`device_id`."""
    alert = public_alert(a)
    return {
        "type": "alert",
        "alert_type": alert["type"],
        "id": alert["id"],
        "status": alert.get("status", "open"),
        "region_code": alert.get("region_code"),
        "engineer_id": alert.get("engineer_id"),
        "device_id": alert.get("device_id"),
        "project_id": alert.get("project_id"),
        "ts": alert.get("ts"),
        "alert": alert,
    }
