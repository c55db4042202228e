"""Small helpers shared by the batch modules: time, WKT and the alert row."""

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
