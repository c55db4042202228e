"""An engineer's history (`GET /api/engineers/{id}/history`) as CSV, one row per fact, or as a
GeoJSON FeatureCollection: pure functions of the JSON answer."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from fastapi import Response


def iso(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


CSV_COLUMNS = [
    "record_type",
    "ts",
    "id",
    "kind",
    "status",
    "project_id",
    "region_code",
    "lon",
    "lat",
    "actor",
    "detail",
]


def _csv_rows(data: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for f in data["fixes"]:
        detail = {k: f[k] for k in ("source", "acc_m", "speed_kmh", "battery") if f[k] is not None}
        rows.append(
            {
                "record_type": "fix",
                "ts": f["ts"],
                "id": f["msg_id"],
                "kind": f["kind"],
                "project_id": ";".join(f["project_ids"] or []),
                "region_code": f["region_code"],
                "lon": f["lon"],
                "lat": f["lat"],
                "detail": json.dumps(detail, ensure_ascii=False),
            }
        )
    for lg in data["logs"]:
        rows.append(
            {
                "record_type": "log",
                "ts": lg["ts"],
                "id": lg["msg_id"],
                "project_id": lg["project_id"],
                "region_code": lg["region_code"],
                "lon": lg["lon"],
                "lat": lg["lat"],
                "detail": lg["text"],
            }
        )
    for t in data["transitions"]:
        rows.append(
            {
                "record_type": "transition",
                "ts": t["ts"],
                "id": t["id"],
                "kind": t["kind"],
                "project_id": t["project_id"],
                "region_code": t["region_code"],
                "detail": t["msg_id"],
            }
        )
    for a in data["alerts"]:
        rows.append(
            {
                "record_type": "alert",
                "ts": a["ts"],
                "id": a["id"],
                "kind": a["type"],
                "status": a["status"],
                "project_id": a["project_id"],
                "region_code": a["region_code"],
                "detail": json.dumps(a["details"], ensure_ascii=False, default=iso),
            }
        )
        for h in a["history"]:
            rows.append(
                {
                    "record_type": "alert_action",
                    "ts": h["at"],
                    "id": a["id"],
                    "kind": a["type"],
                    "status": h["status"],
                    "project_id": a["project_id"],
                    "region_code": a["region_code"],
                    "actor": h["actor"],
                    "detail": h["note"],
                }
            )
    rows.sort(key=lambda r: (r["ts"], r["record_type"], r["id"]))
    return rows


def as_csv(data: dict[str, list[dict[str, Any]]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in _csv_rows(data):
        writer.writerow({k: _csv_value(r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # no formula injection when opened in a spreadsheet
    return value


def as_geojson(data: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> dict[str, Any]:
    where = {f["msg_id"]: [f["lon"], f["lat"]] for f in data["fixes"]}

    def point(lon: Any, lat: Any) -> dict[str, Any]:
        return {"type": "Point", "coordinates": [lon, lat]}

    features: list[dict[str, Any]] = []
    for f in data["fixes"]:
        props = {k: v for k, v in f.items() if k not in ("lon", "lat")}
        features.append(
            {
                "type": "Feature",
                "geometry": point(f["lon"], f["lat"]),
                "properties": {"record_type": "fix", **props},
            }
        )
    for lg in data["logs"]:
        props = {k: v for k, v in lg.items() if k not in ("lon", "lat")}
        features.append(
            {
                "type": "Feature",
                "geometry": point(lg["lon"], lg["lat"]),
                "properties": {"record_type": "log", **props},
            }
        )
    for t in data["transitions"]:
        at = where.get(t["msg_id"])
        features.append(
            {
                "type": "Feature",
                "geometry": point(*at) if at else None,
                "properties": {"record_type": "transition", **t},
            }
        )
    for a in data["alerts"]:
        details = a["details"] or {}
        geometry: dict[str, Any] | None = None
        ends = [where.get(details.get("from_msg_id")), where.get(details.get("to_msg_id"))]
        if all(ends):
            geometry = {"type": "LineString", "coordinates": ends}
        elif where.get(details.get("msg_id")):
            geometry = point(*where[details["msg_id"]])
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {"record_type": "alert", **a},
            }
        )
    features.sort(key=lambda f: f["properties"]["ts"])
    return {"type": "FeatureCollection", "properties": meta, "features": features}


__all__ = ["as_csv", "as_geojson", "iso"]


def download(body: bytes | str, media_type: str, filename: str) -> Response:
    """A response the browser saves as `filename` rather than shows (`nosniff`: the declared
    type is the type)."""
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
