"""What the live map needs beyond the contract's REST calls (docs/map_ui.md):

- `GET /api/me`: the caller's role and scope, and the regions its region picker may offer;
- `GET /api/map/boundaries`: simplified administrative boundaries in the view, as GeoJSON;
- `GET /api/map/positions`: each visible engineer's latest position (the page's resync);
- `GET /api/map/heat`: on-site activity of a local day, snapped to a grid, for the heat map;
- `GET /api/map/engineers/{id}`: what the engineer's popup shows, for any engineer the caller
  sees on the map (also one registered elsewhere but working in the caller's region).

Every answer is limited to the caller's role and region, as the WebSocket is.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import text

from geofence.codes import code_covers, code_prefix, normalise_code
from live_api.auth import Caller
from live_api.deps import Conn, CurrentCaller, SettingsDep, unknown

router = APIRouter(prefix="/api", tags=["map"])

MAX_BOUNDARIES = 600
MAX_POSITIONS = 20_000

Day = Query(default=None, description="local date (YYYY-MM-DD); today when absent")


def _region(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return normalise_code(value)
    except ValueError as exc:
        raise HTTPException(422, f"region {value!r} is not a 6-digit code") from exc


def _scope(caller: Caller, region: str | None) -> str | None:
    """The region prefix an answer is limited to: the asked region, within the caller's."""
    asked = _region(region)
    if caller.role == "regulator":
        own = caller.region_code or ""
        if asked is None:
            return code_prefix(own) if own else "-"  # a regulator without a region sees nothing
        if not own or not code_covers(own, asked):
            raise HTTPException(403, f"region {asked} is outside your region {own or '(none)'}")
    return code_prefix(asked) if asked else None


@router.get("/me")
async def me(conn: Conn, caller: CurrentCaller) -> dict[str, Any]:
    """The caller's role and scope; `regions` are what the map's region picker offers: a
    regulator's own region and the regions directly inside it, an admin's provinces and
    cities. Names come from the imported boundaries (null when none are imported)."""
    if caller.role == "regulator" and caller.region_code:
        own = caller.region_code
        prefix = code_prefix(own)
        child_len = min(len(prefix) + 2, 6)
        rows = (
            await conn.execute(
                text(
                    "SELECT code, name, level FROM regions WHERE code = :own"
                    " OR (code LIKE :like AND length(rtrim(code, '0')) <= :child_len)"
                    " ORDER BY code"
                ),
                {"own": own, "like": prefix + "%", "child_len": child_len},
            )
        ).all()
        regions = [
            {"code": r.code, "name": r.name, "level": r.level}
            for r in rows
            if r.code == own or _child_of(own, r.code)
        ]
        if not any(r["code"] == own for r in regions):
            regions.insert(0, {"code": own, "name": None, "level": None})
    elif caller.role == "admin":
        rows = (
            await conn.execute(
                text(
                    "SELECT code, name, level FROM regions"
                    " WHERE level IN ('province', 'city') ORDER BY code"
                )
            )
        ).all()
        regions = [{"code": r.code, "name": r.name, "level": r.level} for r in rows]
    else:
        regions = []
    return {
        "role": caller.role,
        "region_code": caller.region_code,
        "engineer_id": caller.engineer_id,
        "device_ids": list(caller.device_ids),
        "can_act_on_alerts": caller.role in ("admin", "regulator"),
        "regions": regions,
    }


def _child_of(outer: str, inner: str) -> bool:
    """`inner` is one level below `outer` (a city of a province, a district of a city)."""
    if inner == outer or not code_covers(outer, inner):
        return False
    return len(code_prefix(inner)) == len(code_prefix(outer)) + 2


@router.get("/map/boundaries")
async def boundaries(
    conn: Conn,
    caller: CurrentCaller,
    bbox: str | None = Query(
        default=None,
        max_length=100,
        description="min_lon,min_lat,max_lon,max_lat (WGS-84); the whole scope when absent",
    ),
    zoom: float = Query(default=10, ge=0, le=22),
    level: Literal["province", "city", "district"] | None = Query(
        default=None,
        description="default from the zoom: districts and their cities from 8, cities and"
        " their provinces from 5, provinces below",
    ),
    region: str | None = Query(default=None, max_length=9),
) -> dict[str, Any]:
    """Administrative boundaries in the view, simplified to about a pixel at `zoom`."""
    prefix = _scope(caller, region)
    if level is None:
        levels = (
            ["district", "city"]
            if zoom >= 8
            else ["city", "province"]
            if zoom >= 5
            else ["province"]
        )
    else:
        levels = [level]
    params: dict[str, Any] = {
        "levels": levels,
        "tol": 360 / (256 * 2**zoom),
        "limit": MAX_BOUNDARIES,
    }
    where = ["level = ANY(:levels)"]
    if prefix is not None:
        where.append("code LIKE :like")
        params["like"] = prefix + "%"
    if bbox:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
        except ValueError as exc:
            raise HTTPException(
                422, "bbox must be four numbers: min_lon,min_lat,max_lon,max_lat"
            ) from exc
        if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise HTTPException(422, "bbox must be min_lon,min_lat,max_lon,max_lat within WGS-84")
        where.append("geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=x0, y0=y0, x1=x1, y1=y1)
    rows = (
        await conn.execute(
            text(
                "SELECT code, name, level,"
                " ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, :tol), 5) AS geometry"
                f" FROM regions WHERE {' AND '.join(where)} ORDER BY code LIMIT :limit"
            ),
            params,
        )
    ).all()
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": r.code,
                "properties": {"code": r.code, "name": r.name, "level": r.level},
                "geometry": json.loads(r.geometry),
            }
            for r in rows
        ],
    }


def _position_filter(caller: Caller, prefix: str | None) -> tuple[str, dict[str, Any]]:
    if caller.role == "engineer":
        clause, params = "f.engineer_id = :own", {"own": caller.engineer_id or ""}
    elif caller.role in ("admin", "regulator"):
        clause, params = "TRUE", {}
    else:
        clause, params = "FALSE", {}
    if prefix is not None:
        clause += " AND f.region_code LIKE :like AND f.region_code <> ''"
        params["like"] = prefix + "%"
    return clause, params


@router.get("/map/positions")
async def positions(
    conn: Conn,
    caller: CurrentCaller,
    region: str | None = Query(default=None, max_length=9),
    hours: float = Query(default=24, gt=0, le=24 * 31, description="how far back to look"),
) -> list[dict[str, Any]]:
    """The latest position of every engineer seen in the caller's region in the last `hours`,
    each shaped like the WebSocket's `position` message (plus the engineer's `name`)."""
    prefix = _scope(caller, region)
    clause, params = _position_filter(caller, prefix)
    params.update(since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours), limit=MAX_POSITIONS)
    rows = (
        await conn.execute(
            text(
                "SELECT DISTINCT ON (f.engineer_id) f.engineer_id, f.msg_id, f.ts,"
                " ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat, f.acc_m, f.project_ids,"
                " f.region_code, f.battery, e.name"
                " FROM fixes f LEFT JOIN engineers e ON e.id = f.engineer_id"
                f" WHERE f.ts >= :since AND {clause}"
                " ORDER BY f.engineer_id, f.ts DESC, f.msg_id DESC LIMIT :limit"
            ),
            params,
        )
    ).all()
    return [
        {
            "type": "position",
            "engineer_id": r.engineer_id,
            "msg_id": r.msg_id,
            "ts": r.ts.isoformat(),
            "lon": r.lon,
            "lat": r.lat,
            "acc_m": r.acc_m,
            "project_ids": list(r.project_ids or []),
            "region_code": r.region_code,
            "battery": r.battery,
            "name": r.name,
        }
        for r in rows
        if caller.sees(region_code=r.region_code, engineer_id=r.engineer_id)
    ]


@router.get("/map/heat")
async def heat(
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    date: dt.date | None = Day,
    region: str | None = Query(default=None, max_length=9),
    cell_deg: float = Query(default=0.0005, ge=0.00005, le=0.5),
) -> dict[str, Any]:
    """On-site activity of one local day: on-site fixes snapped to a grid of `cell_deg`,
    `points` as `[lat, lon, count]` (the order leaflet.heat takes), `max` the largest count."""
    prefix = _scope(caller, region)
    day = date or dt.datetime.now(ZoneInfo(settings.timezone)).date()
    clause, params = _position_filter(caller, prefix)
    params.update(day=day, cell=cell_deg)
    rows = (
        await conn.execute(
            text(
                "SELECT ST_Y(c) AS lat, ST_X(c) AS lon, n FROM ("
                " SELECT ST_SnapToGrid(f.geom, :cell) AS c, count(*) AS n FROM fixes f"
                f" WHERE f.local_date = :day AND cardinality(f.project_ids) > 0 AND {clause}"
                " GROUP BY 1) g ORDER BY n DESC LIMIT 5000"
            ),
            params,
        )
    ).all()
    points = [[round(r.lat, 6), round(r.lon, 6), int(r.n)] for r in rows]
    return {
        "date": day.isoformat(),
        "points": points,
        "max": max((p[2] for p in points), default=0),
    }


@router.get("/map/engineers/{engineer_id}")
async def engineer_card(engineer_id: str, conn: Conn, caller: CurrentCaller) -> dict[str, Any]:
    """The engineer's card: masked as `GET /api/engineers/{id}` when the caller covers the
    engineer's registration (`scope: "registered"`); name, registration and certificate only
    when the engineer merely worked in the caller's region in the last 31 days
    (`scope: "in_region"`)."""
    row = (
        await conn.execute(
            text(
                "SELECT id, name, registered_region, cert_status, phone_last4"
                " FROM engineers WHERE id = :id"
            ),
            {"id": engineer_id},
        )
    ).first()
    if row is None:
        raise unknown(caller, "engineer", engineer_id)
    scope = (
        "registered" if caller.sees(region_code=row.registered_region, engineer_id=row.id) else None
    )
    prefix = _scope(caller, None)
    clause, params = _position_filter(caller, prefix)
    if scope is None:
        params.update(id=engineer_id, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=31))
        seen = (
            await conn.execute(
                text(
                    "SELECT 1 FROM fixes f WHERE f.engineer_id = :id AND f.ts >= :since"
                    f" AND {clause} LIMIT 1"
                ),
                params,
            )
        ).first()
        if seen is None:
            raise HTTPException(403, f"engineer {engineer_id!r} is outside your region or role")
        scope = "in_region"
    return {
        "id": row.id,
        "name": row.name,
        "registered_region": row.registered_region,
        "cert_status": row.cert_status,
        "phone": ("*******" + row.phone_last4)
        if scope == "registered" and row.phone_last4
        else None,
        "scope": scope,
    }
