"""Projects (sites): a GeoJSON Feature each, created by an admin, read in scope.
Scoping: live_api.routes.registry."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import shapely
from fastapi import APIRouter, HTTPException, Query, Request, Response
from geoalchemy2.shape import to_shape
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from geofence.codes import normalise_code
from geofence.coords import geometry_to_wgs84
from live_api import audit, schemas
from live_api.auth import Caller
from live_api.deps import (
    Admin,
    Conn,
    CurrentCaller,
    in_region,
    scope_region,
    unknown,
)
from live_api.routes.registry import MAX_VERTICES, SAFE_ID_RE, RegionQuery, identity_taken
from store.models import (
    ChangeLog,
    Device,
    Project,
    ProjectBoundary,
)

router = APIRouter(prefix="/api")


def _multi(geom: Any) -> MultiPolygon:
    return geom if isinstance(geom, MultiPolygon) else MultiPolygon([geom])


def _check_rings(geometry: dict[str, Any]) -> None:
    """RFC 7946 linear rings: closed, at least 4 positions of 2 or 3 finite numbers."""
    coords = geometry.get("coordinates")
    polygons = [coords] if geometry["type"] == "Polygon" else coords
    if not isinstance(polygons, list) or not polygons:
        raise HTTPException(422, "geometry coordinates are malformed: expected nested arrays")
    for p, rings in enumerate(polygons):
        if not isinstance(rings, list) or not rings:
            raise HTTPException(
                422, f"geometry coordinates are malformed: polygon {p} has no rings"
            )
        for r, ring in enumerate(rings):
            where = f"polygon {p} ring {r}"
            if not isinstance(ring, list) or not all(
                isinstance(pt, list)
                and len(pt) in (2, 3)
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e300
                    for v in pt
                )
                for pt in ring
            ):
                raise HTTPException(
                    422,
                    f"geometry coordinates are malformed: {where} must be a list of "
                    "[lon, lat] positions",
                )
            if len(ring) < 4:
                raise HTTPException(
                    422, f"invalid geometry: {where} has {len(ring)} positions, at least 4 needed"
                )
            if ring[0][:2] != ring[-1][:2]:
                raise HTTPException(
                    422,
                    f"invalid geometry: {where} is not closed (its first and last positions "
                    "must be equal)",
                )


def parse_site(feature: Any) -> tuple[dict[str, Any], MultiPolygon]:
    """A GeoJSON Feature -> (properties, WGS-84 MultiPolygon); HTTP 422 naming the problem."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise HTTPException(
            422, "body must be a GeoJSON Feature with a Polygon or MultiPolygon geometry"
        )
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise HTTPException(422, "Feature.properties must be an object with at least 'id'")
    _check_top_level_crs(feature.get("crs"))
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise HTTPException(
            422, "geometry must be a GeoJSON Polygon or MultiPolygon in lon/lat order"
        )
    _check_rings(geometry)
    try:
        geom = shape(geometry)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise HTTPException(422, f"geometry coordinates are malformed: {exc}") from exc
    if not isinstance(geom, Polygon | MultiPolygon) or geom.is_empty:
        raise HTTPException(422, "geometry is empty")
    if shapely.get_num_coordinates(geom) > MAX_VERTICES:
        raise HTTPException(422, f"geometry has more than {MAX_VERTICES} vertices")
    coords = shapely.get_coordinates(geom)
    if not (abs(coords[:, 0]) <= 180).all() or not (abs(coords[:, 1]) <= 90).all():
        raise HTTPException(
            422,
            "coordinates out of range: lon must be within -180..180 and lat within -90..90 (lon first)",
        )
    if not shapely.is_valid(geom):
        raise HTTPException(422, f"invalid geometry: {shapely.is_valid_reason(geom)}")
    crs = props.get("crs") or "wgs84"
    if not isinstance(crs, str) or crs.lower() not in ("wgs84", "gcj02", "bd09"):
        raise HTTPException(422, f"crs {crs!r} unknown; use wgs84, gcj02 or bd09")
    converted = geometry_to_wgs84(geom, crs.lower())
    if not shapely.is_valid(converted):
        raise HTTPException(
            422, f"invalid geometry after {crs} conversion: {shapely.is_valid_reason(converted)}"
        )
    return props, _multi(converted)


# GeoJSON 2008's named CRS members that mean lon/lat WGS-84 (RFC 7946 dropped `crs`).
WGS84_CRS_NAMES = {
    "urn:ogc:def:crs:ogc:1.3:crs84",
    "urn:ogc:def:crs:epsg::4326",
    "epsg:4326",
    "crs84",
    "wgs84",
}


def _check_top_level_crs(crs: Any) -> None:
    """A top-level ``crs`` is honoured when it names WGS-84 and refused otherwise: silently
    reading other coordinates as WGS-84 would put the site elsewhere. GCJ-02 and BD-09 go in
    ``properties.crs``."""
    if crs is None:
        return
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) else None
    if not isinstance(name, str) or name.strip().lower() not in WGS84_CRS_NAMES:
        raise HTTPException(
            422,
            "the Feature's top-level crs must name WGS-84 (urn:ogc:def:crs:OGC:1.3:CRS84 or "
            "EPSG:4326); for GCJ-02 or BD-09 set properties.crs to gcj02 or bd09",
        )


def feature_of(row: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": row.id,
        "properties": {
            **(row.properties or {}),
            "id": row.id,
            "name": row.name,
            "region_code": row.region_code,
            "crs": "wgs84",
            "source_crs": row.crs,
            "chief_engineer_id": row.chief_engineer_id,
            "engineer_ids": row.engineer_ids or [],
            "required_days_per_month": row.required_days_per_month,
            "buffer_m": row.buffer_m,
            "retired_at": row.retired_at.isoformat() if row.retired_at else None,
        },
        "geometry": mapping(to_shape(row.geom)),
    }


def project_etag(row: Any) -> str:
    """A strong ETag of the project as `GET` shows it (CONTRACT §6.3)."""
    raw = orjson.dumps(feature_of(row), option=orjson.OPT_SORT_KEYS)
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def _str_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SAFE_ID_RE.match(value):
        raise HTTPException(
            422,
            f"properties.{what} must be 1-64 characters of letters, digits and _ . : @ -",
        )
    return value


KNOWN_PROPS = {
    "id",
    "name",
    "region_code",
    "crs",
    "source_crs",
    "chief_engineer_id",
    "engineer_ids",
    "required_days_per_month",
    "buffer_m",
}


@router.post(
    "/projects",
    status_code=201,
    response_model=schemas.ProjectFeature,
    tags=["projects"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schemas.PROJECT_BODY_SCHEMA,
                    "example": schemas.PROJECT_EXAMPLE,
                }
            },
        }
    },
)
async def create_project(request: Request, conn: Conn, admin: Admin) -> dict[str, Any]:
    """Admin only. Body: GeoJSON Feature (Polygon/MultiPolygon, lon/lat). properties: id, name,
    region_code? (derived from the geometry if absent), crs? (wgs84|gcj02|bd09; stored
    converted to WGS-84), chief_engineer_id?, engineer_ids?, required_days_per_month?,
    buffer_m?; other properties are kept. 409 for an existing id, 422 naming what is wrong
    with the geometry (self-intersection, out-of-range coordinates, ...)."""
    try:
        feature = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, f"body is not JSON: {exc}") from exc
    return feature_of(await add_project(request, conn, admin, feature))


async def add_project(request: Request, conn: Any, admin: Caller, feature: Any) -> Any:
    """Check and register one project Feature (POST /api/projects, the bulk import); its row,
    or the HTTPException naming what is wrong."""
    props, geom = parse_site(feature)
    project_id = _str_id(props.get("id"), "id")
    if await identity_taken(conn, project_id, kinds=("project",)):
        raise HTTPException(409, f"project {project_id!r} already exists (ids ignore case)")
    name = props.get("name") or project_id
    if not isinstance(name, str) or len(name) > 200:
        raise HTTPException(422, "properties.name must be a string of at most 200 characters")
    region = props.get("region_code")
    if region is not None:
        try:
            region = normalise_code(region)
        except (ValueError, TypeError) as exc:
            raise HTTPException(422, f"properties.region_code: {exc}") from exc
        if region == "000000":
            raise HTTPException(422, "properties.region_code: '000000' is not a region")
    else:
        fences = await request.app.state.fences.current()
        point = geom.representative_point()
        located = fences.regions.locate_one(point.x, point.y)
        place = located.get("district") or located.get("city") or located.get("province")
        if not place:
            raise HTTPException(
                422,
                "no region_code given and no imported region covers the site: import regions or pass region_code",
            )
        region = place["code"]
    engineer_ids = props.get("engineer_ids") or []
    if not isinstance(engineer_ids, list) or not all(
        isinstance(e, str) and SAFE_ID_RE.match(e) for e in engineer_ids
    ):
        raise HTTPException(422, "properties.engineer_ids must be a list of engineer ids")
    days = props.get("required_days_per_month")
    if days is not None and (
        not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 31
    ):
        raise HTTPException(422, "properties.required_days_per_month must be an integer 0..31")
    buffer_m = props.get("buffer_m") or 0.0
    if (
        not isinstance(buffer_m, int | float)
        or isinstance(buffer_m, bool)
        or not 0 <= buffer_m <= 5000
    ):
        raise HTTPException(422, "properties.buffer_m must be a number of metres 0..5000")
    chief = props.get("chief_engineer_id")
    if chief is not None and not (isinstance(chief, str) and SAFE_ID_RE.match(chief)):
        raise HTTPException(422, "properties.chief_engineer_id must be an engineer id")
    result = await conn.execute(
        pg_insert(Project)
        .values(
            id=project_id,
            name=name,
            region_code=region,
            crs=str(props.get("crs") or "wgs84").lower(),
            chief_engineer_id=chief,
            engineer_ids=engineer_ids,
            required_days_per_month=days,
            buffer_m=float(buffer_m),
            properties={k: v for k, v in props.items() if k not in KNOWN_PROPS},
            geom="SRID=4326;" + geom.wkt,
        )
        .on_conflict_do_nothing()
        .returning(Project.id)
    )
    if result.first() is None:
        raise HTTPException(409, f"project {project_id!r} already exists")
    await conn.execute(insert(ChangeLog).values(kind="projects"))
    row = (await conn.execute(select(Project).where(Project.id == project_id))).one()
    await audit.record(
        conn,
        admin,
        "project.create",
        f"project:{project_id}",
        name=name,
        region_code=region,
        chief_engineer_id=chief,
        engineer_ids=engineer_ids,
        area_deg2=round(geom.area, 9),
    )
    return row


async def _vendor_projects(conn: Any, caller: Caller) -> set[str]:
    if caller.role != "vendor" or not caller.device_ids:
        return set()
    rows = await conn.execute(
        select(Device.project_id).where(Device.id.in_(list(caller.device_ids)))
    )
    return {r[0] for r in rows}


def _may_see_project(caller: Caller, row: Any, vendor_projects: set[str]) -> bool:
    if caller.role == "engineer":
        return (
            caller.engineer_id in (row.engineer_ids or [])
            or caller.engineer_id == row.chief_engineer_id
        )
    if caller.role == "vendor":
        return row.id in vendor_projects
    return caller.sees_region(row.region_code)


@router.get("/projects", response_model=schemas.ProjectCollection, tags=["projects"])
async def list_projects(
    conn: Conn,
    caller: CurrentCaller,
    response: Response,
    region: str | None = RegionQuery,
    q: str | None = Query(default=None, max_length=64, description="part of the id or name"),
    limit: int | None = Query(default=None, ge=1, le=1000, description="a page; default all"),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    revised: bool | None = Query(
        default=None,
        description="only projects whose boundary was revised (true) or never was (false): "
        "their boundary history is at /api/projects/{id}/boundaries",
    ),
) -> dict[str, Any]:
    """The projects the caller may see: all (admin), those in its region (regulator), those it
    is assigned to (engineer), those of its devices (vendor). `X-Total-Count` holds how many
    match, for paging with `limit` and `offset`."""
    code = scope_region(caller, region)
    conditions: list[Any] = []
    if code:
        conditions.append(in_region(Project.region_code, code))
    if caller.role == "regulator":
        conditions.append(in_region(Project.region_code, caller.region_code or ""))
    if q:
        conditions.append(
            or_(
                Project.id.icontains(q, autoescape=True), Project.name.icontains(q, autoescape=True)
            )
        )
    if revised is not None:
        with_history = Project.id.in_(select(ProjectBoundary.project_id))
        conditions.append(with_history if revised else ~with_history)
    vendor_projects = await _vendor_projects(conn, caller)
    query = select(Project).where(*conditions).order_by(Project.id)
    if caller.role in ("admin", "regulator"):  # scoped in SQL: page there
        total = await conn.scalar(select(func.count()).select_from(Project).where(*conditions))
        rows = list((await conn.execute(query.offset(offset).limit(limit))).all())
    else:  # a handful of projects: scoped here
        seen = [r for r in (await conn.execute(query)).all()]
        seen = [r for r in seen if _may_see_project(caller, r, vendor_projects)]
        total = len(seen)
        rows = seen[offset : None if limit is None else offset + limit]
    response.headers["X-Total-Count"] = str(total)
    return {"type": "FeatureCollection", "features": [feature_of(r) for r in rows]}


@router.get(
    "/projects/{project_id}",
    response_model=schemas.ProjectFeature,
    tags=["projects"],
)
async def get_project(
    project_id: str, response: Response, conn: Conn, caller: CurrentCaller
) -> dict[str, Any]:
    row = (await conn.execute(select(Project).where(Project.id == project_id))).first()
    if row is None:
        raise unknown(caller, "project", project_id)
    if not _may_see_project(caller, row, await _vendor_projects(conn, caller)):
        raise HTTPException(403, f"project {project_id!r} is outside your region or role")
    response.headers["ETag"] = project_etag(row)
    return feature_of(row)
