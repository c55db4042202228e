"""Engineers (their MQTT identity, phones, credentials) and filings.
Scoping: live_api.routes.registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from devices.credentials import new_osmand_id, secret_hash
from gm.algorithms import normalize_public_key, sm4_encrypt
from live_api import audit, schemas
from live_api.auth import Caller
from live_api.ce_records import declare_hours, this_year
from live_api.deps import (
    Admin,
    Conn,
    CurrentCaller,
    SettingsDep,
    in_region,
    scope_region,
    unknown,
)
from live_api.routes.registry import (
    BROKER_DOWN,
    IDENTITY_KINDS,
    RegionQuery,
    _new_identity,
    _personal_key,
    already_exists,
    etag,
    identity_taken,
    lock_registry,
    masked,
    reset_credentials,
)
from rules.certificate import SINCE_REGISTRATION
from store.models import (
    CertStatusChange,
    Engineer,
    Filing,
    Phone,
    Project,
)

router = APIRouter(prefix="/api")


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
        cert_status_from=row.cert_status_from,
        cert_number=row.cert_number,
        cert_valid_to=row.cert_valid_to,
        employer=(  # as stored: checked when it was written
            schemas.Employer.model_construct(
                name=row.employer_name, credit_code=row.employer_credit_code
            )
            if row.employer_name and row.employer_credit_code
            else None
        ),
        retired_at=row.retired_at,
    )


def _last4(value: str | None) -> str | None:
    """The part kept in clear for masking: the last 4 characters, nothing for short values."""
    return value[-4:] if value and len(value) > 6 else None


@router.post(
    "/engineers",
    status_code=201,
    response_model=schemas.EngineerCreated,
    tags=["engineers"],
    responses=BROKER_DOWN,
)
async def create_engineer(
    body: schemas.EngineerCreate,
    request: Request,
    conn: Conn,
    admin: Admin,
    settings: SettingsDep,
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
    # the registration's status applies from the beginning (rules.certificate)
    await conn.execute(
        insert(CertStatusChange).values(
            engineer_id=body.id, status=body.cert_status, from_date=SINCE_REGISTRATION
        )
    )
    if body.ce_hours > 0:
        await declare_hours(conn, admin, body.id, body.ce_hours, this_year(settings.timezone))
    password = await _engineer_password(request, conn, body.id)
    osmand_id = await _new_phone(conn, body.id, "first phone")
    out = engineer_out(row)
    await audit.record(conn, admin, "engineer.create", f"engineer:{body.id}", **out.model_dump())
    return schemas.EngineerCreated(**out.model_dump(), mqtt_password=password, osmand_id=osmand_id)


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
    await audit.record(conn, caller, "phone.create", f"engineer:{engineer_id}", label=body.label)
    return schemas.PhoneOut(engineer_id=engineer_id, label=body.label, osmand_id=osmand_id)


def _regulated_engineers(code: str) -> Any:
    """SQL: the engineers a regulator of `code` may see: registered there, filed there, or
    chief or member of a project there (one condition, so lists page and count in SQL)."""
    on_project = select(
        func.unnest(func.array_append(Project.engineer_ids, Project.chief_engineer_id))
    ).where(in_region(Project.region_code, code))
    return or_(
        in_region(Engineer.registered_region, code),
        Engineer.id.in_(select(Filing.engineer_id).where(in_region(Filing.region_code, code))),
        Engineer.id.in_(on_project),
    )


@router.get("/engineers", response_model=list[schemas.EngineerOut], tags=["engineers"])
async def list_engineers(
    conn: Conn,
    caller: CurrentCaller,
    response: Response,
    region: str | None = RegionQuery,
    cert_status: str | None = Query(default=None, pattern="^(valid|suspended|expired)$"),
    q: str | None = Query(default=None, max_length=64, description="part of the id or name"),
    limit: int | None = Query(default=None, ge=1, le=1000, description="a page; default all"),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[schemas.EngineerOut]:
    """The engineers the caller may see (personal fields masked): all (admin); those registered
    in, filed for or working on a project in its region (regulator; `region` narrows it to
    engineers registered there); itself (engineer); none (vendor). `X-Total-Count` holds how
    many match, for paging with `limit` and `offset`."""
    code = scope_region(caller, region)
    conditions: list[Any] = []
    if caller.role == "regulator":
        conditions.append(_regulated_engineers(caller.region_code or ""))
    elif caller.role == "engineer":
        conditions.append(Engineer.id == caller.engineer_id)
    elif caller.role == "vendor":
        response.headers["X-Total-Count"] = "0"
        return []
    if code:
        conditions.append(in_region(Engineer.registered_region, code))
    if cert_status:
        conditions.append(Engineer.cert_status == cert_status)
    if q:
        conditions.append(
            or_(
                Engineer.id.icontains(q, autoescape=True),
                Engineer.name.icontains(q, autoescape=True),
            )
        )
    total = await conn.scalar(select(func.count()).select_from(Engineer).where(*conditions))
    response.headers["X-Total-Count"] = str(total)
    page = select(Engineer).where(*conditions).order_by(Engineer.id).offset(offset).limit(limit)
    return [engineer_out(r) for r in await conn.execute(page)]


async def _may_see_engineer(conn: Any, caller: Caller, row: Any) -> bool:
    if caller.role != "regulator":
        return caller.sees(region_code=row.registered_region, engineer_id=row.id)
    if caller.sees_region(row.registered_region):
        return True
    condition = _regulated_engineers(caller.region_code or "")
    found = await conn.execute(select(Engineer.id).where(and_(Engineer.id == row.id, condition)))
    return found.first() is not None


@router.get(
    "/engineers/{engineer_id}",
    response_model=schemas.EngineerOut,
    tags=["engineers"],
)
async def get_engineer(
    engineer_id: str, conn: Conn, caller: CurrentCaller, response: Response
) -> schemas.EngineerOut:
    """The engineer, personal fields masked; `ETag` for a later `PATCH` with `If-Match`."""
    row = await visible_engineer(conn, caller, engineer_id)
    out = engineer_out(row)
    response.headers["ETag"] = engineer_etag(row)
    return out


def engineer_etag(row: Any) -> str:
    """The engineer's version: what the API shows, and the personal fields it shows masked."""
    return etag(engineer_out(row), row.phone_enc, row.id_number_enc)


async def visible_engineer(
    conn: Any, caller: Caller, engineer_id: str, *, for_update: bool = False
) -> Any:
    """The engineer's row, or the 403/404 of one the caller may not see; `for_update` locks
    it for the transaction (a change checked against If-Match cannot race another)."""
    query = select(Engineer).where(Engineer.id == engineer_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise unknown(caller, "engineer", engineer_id)
    if not await _may_see_engineer(conn, caller, row):
        raise HTTPException(403, f"engineer {engineer_id!r} is outside your region or role")
    return row


@router.post(
    "/engineers/{engineer_id}/credentials",
    response_model=schemas.Credentials,
    tags=["engineers"],
    responses=BROKER_DOWN,
)
async def reset_engineer_credentials(
    engineer_id: str, request: Request, conn: Conn, admin: Admin
) -> schemas.Credentials:
    """Admin only. A new MQTT password for the engineer (the old one stops working)."""
    return await reset_credentials(
        conn, admin, Engineer, engineer_id, lambda: _engineer_password(request, conn, engineer_id)
    )


@router.post("/filings", status_code=201, response_model=schemas.FilingOut, tags=["engineers"])
async def create_filing(body: schemas.FilingCreate, conn: Conn, admin: Admin) -> schemas.FilingOut:
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
    await lock_registry(conn)  # filing ids commit in order: the worker's cache version
    result = await conn.execute(insert(Filing).values(**body.model_dump()).returning(Filing.id))
    filing_id = result.scalar_one()
    await audit.record(conn, admin, "filing.create", f"filing:{filing_id}", **body.model_dump())
    return schemas.FilingOut(id=filing_id, **body.model_dump())
