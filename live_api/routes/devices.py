"""Devices: registration with their MQTT identity and HMAC key, read in scope.
Scoping: live_api.routes.registry."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from gm.algorithms import sm4_encrypt
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
from live_api.routes.registry import (
    BROKER_DOWN,
    IDENTITY_KINDS,
    RegionQuery,
    _new_identity,
    _personal_key,
    already_exists,
    etag,
    identity_taken,
    reset_credentials,
)
from store.models import (
    Device,
    Project,
)

router = APIRouter(prefix="/api")


@router.post(
    "/devices",
    status_code=201,
    response_model=schemas.DeviceCreated,
    tags=["devices"],
    responses=BROKER_DOWN,
)
async def create_device(
    body: schemas.DeviceCreate, request: Request, conn: Conn, admin: Admin
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
    await audit.record(
        conn,
        admin,
        "device.create",
        f"device:{body.id}",
        project_id=body.project_id,
        kind=body.kind,
        report_interval_s=body.report_interval_s,
        thresholds=thresholds,
    )
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
            Device.retired_at,
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
        retired_at=row.retired_at,
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
async def get_device(
    device_id: str, conn: Conn, caller: CurrentCaller, response: Response
) -> schemas.DeviceOut:
    """The device (never its key); `ETag` for a later `PATCH` with `If-Match`."""
    out = _device_out(await visible_device(conn, caller, device_id))
    response.headers["ETag"] = etag(out)
    return out


async def visible_device(
    conn: Any, caller: Caller, device_id: str, *, for_update: bool = False
) -> Any:
    """The device's row (with its project's region), or the 403/404 of one the caller may not
    see; `for_update` locks the device row for the transaction."""
    exists = select(Device.id).where(Device.id == device_id)
    if (await conn.execute(exists.with_for_update() if for_update else exists)).first() is None:
        raise unknown(caller, "device", device_id)
    row = (await conn.execute(_device_query(caller).where(Device.id == device_id))).first()
    if row is None:
        raise HTTPException(403, f"device {device_id!r} is outside your region or role")
    return row


@router.post(
    "/devices/{device_id}/credentials",
    response_model=schemas.Credentials,
    tags=["devices"],
    responses=BROKER_DOWN,
)
async def reset_device_credentials(
    device_id: str, request: Request, conn: Conn, admin: Admin
) -> schemas.Credentials:
    """Admin only. A new MQTT password for the device (the old one stops working)."""
    return await reset_credentials(
        conn, admin, Device, device_id, lambda: _new_identity(request, "device", device_id)
    )
