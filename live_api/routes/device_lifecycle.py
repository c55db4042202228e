"""Changing and retiring devices (CONTRACT §6.3): `PATCH` with `If-Match`, `DELETE` that keeps
history, and each device's changes with their actor. The worker reads a device's thresholds
and report interval with every batch (streams.device_batch.load_devices), so a change applies
to the next readings; the ingest directory reads a retired device again within 30 s."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select, update

from live_api import audit, schemas
from live_api.deps import Admin, Conn, CurrentCaller, as_utc
from live_api.routes.devices import _device_out, visible_device
from live_api.routes.registry import change_history, check_if_match, diff, etag, retire
from store import alert_events
from store.models import Alert, Device, Project, Telemetry

router = APIRouter(prefix="/api")


@router.patch("/devices/{device_id}", response_model=schemas.DeviceOut, tags=["devices"])
async def patch_device(
    device_id: str,
    body: schemas.DevicePatch,
    request: Request,
    response: Response,
    conn: Conn,
    admin: Admin,
) -> schemas.DeviceOut:
    """Admin only. Any of `thresholds` (the whole set), `report_interval_s`, `project_id`; with
    `If-Match` (the ETag of a `GET`), 412 when the device changed since."""
    before = _device_out(await visible_device(conn, admin, device_id, for_update=True))
    check_if_match(request, "device", device_id, etag(before))
    given = body.model_dump(exclude_unset=True)
    if "project_id" in given:
        found = await conn.execute(select(Project.id).where(Project.id == given["project_id"]))
        if found.first() is None:
            raise HTTPException(422, f"no project {given['project_id']!r}: register it first")
    if "thresholds" in given:
        given["thresholds"] = {
            m: lim.model_dump(exclude_none=True) for m, lim in (body.thresholds or {}).items()
        }
    if given:
        await conn.execute(update(Device).where(Device.id == device_id).values(**given))
    after = _device_out(await visible_device(conn, admin, device_id))
    changes = diff(before.model_dump(mode="json"), after.model_dump(mode="json"))
    if changes:
        await audit.record(conn, admin, "device.update", f"device:{device_id}", changes=changes)
    response.headers["ETag"] = etag(after)
    return after


@router.delete("/devices/{device_id}", status_code=204, tags=["devices"])
async def retire_device(device_id: str, request: Request, conn: Conn, admin: Admin) -> Response:
    """Admin only. Retired, kept for history: its readings and alerts stay readable; its new
    messages are rejected with reason `retired`. Retiring again changes nothing."""
    row = await visible_device(conn, admin, device_id, for_update=True)
    check_if_match(request, "device", device_id, etag(_device_out(row)))
    if await retire(conn, Device, device_id):
        # a silence alert of a device that will never report again would stay open for good
        silent = (
            await conn.execute(
                update(Alert)
                .where(
                    Alert.device_id == device_id,
                    Alert.type == "device_offline",
                    Alert.status != "resolved",
                )
                .values(status="resolved")
                .returning(Alert.id)
            )
        ).scalars()
        await alert_events.changed(conn, list(silent), "resolved", "device retired", admin.name)
        await audit.record(conn, admin, "device.retire", f"device:{device_id}")
    return Response(status_code=204)


@router.get("/devices/{device_id}/changes", response_model=list[schemas.Change], tags=["devices"])
async def device_changes(device_id: str, conn: Conn, caller: CurrentCaller) -> list[schemas.Change]:
    """Who changed what and when, oldest first, to whoever may read the device."""
    await visible_device(conn, caller, device_id)
    return await change_history(conn, "device", device_id)


@router.get("/devices/{device_id}/telemetry", tags=["devices"])
async def device_telemetry(
    device_id: str,
    conn: Conn,
    caller: CurrentCaller,
    since: dt.datetime | None = None,
    limit: int = Query(default=500, ge=1, le=5000),
) -> list[dict[str, Any]]:
    """The device's latest accepted readings, newest first (`since`: naive means UTC); its
    vendor, admins and regulators of its project's region."""
    await visible_device(conn, caller, device_id)
    q = select(Telemetry.ts, Telemetry.metrics).where(Telemetry.device_id == device_id)
    if since is not None:
        q = q.where(Telemetry.ts >= as_utc(since))
    rows = await conn.execute(q.order_by(Telemetry.ts.desc()).limit(limit))
    return [{"ts": r.ts.isoformat(), "metrics": r.metrics} for r in rows]
