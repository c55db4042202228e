"""Filings (备案): list and revoke (CONTRACT §6.3); created by `POST /api/filings`
(live_api.routes.engineers). Scoping: live_api.routes.registry."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import or_, select, update

from live_api import audit, schemas
from live_api.deps import Admin, Conn, CurrentCaller, SettingsDep, in_region, scope_region
from live_api.routes.registry import RegionQuery, registry_changed
from store.models import Filing

router = APIRouter(prefix="/api")


def filing_out(row: Any) -> schemas.FilingOut:
    return schemas.FilingOut(
        id=row.id,
        engineer_id=row.engineer_id,
        region_code=row.region_code,
        valid_from=row.valid_from,
        valid_to=row.valid_to,
        project_id=row.project_id,
        revoked_on=row.revoked_on,
    )


@router.get("/filings", response_model=list[schemas.FilingOut], tags=["engineers"])
async def list_filings(
    conn: Conn,
    caller: CurrentCaller,
    engineer_id: str | None = Query(default=None, max_length=64),
    region: str | None = RegionQuery,
) -> list[schemas.FilingOut]:
    """The filings the caller may see: all (admin), those for its region (regulator), its own
    (engineer); `region` keeps those for a region inside it."""
    code = scope_region(caller, region)
    query = select(Filing).order_by(Filing.id)
    if caller.role == "regulator":
        query = query.where(in_region(Filing.region_code, caller.region_code or ""))
    elif caller.role == "engineer":
        query = query.where(Filing.engineer_id == caller.engineer_id)
    elif caller.role != "admin":
        return []
    if code:
        query = query.where(in_region(Filing.region_code, code))
    if engineer_id:
        query = query.where(Filing.engineer_id == engineer_id)
    return [filing_out(r) for r in await conn.execute(query.limit(10_000))]


@router.post("/filings/{filing_id}/revoke", response_model=schemas.FilingOut, tags=["engineers"])
async def revoke_filing(
    filing_id: int,
    conn: Conn,
    admin: Admin,
    settings: SettingsDep,
    body: schemas.FilingRevoke | None = None,
) -> schemas.FilingOut:
    """Admin only. The filing is no longer valid from `on` (default: today) on; fixes before
    it keep their result. Revoking again may only bring the day forward."""
    on = (body.on if body else None) or dt.datetime.now(ZoneInfo(settings.timezone)).date()
    row = (
        await conn.execute(
            update(Filing)
            .where(
                Filing.id == filing_id,
                or_(Filing.revoked_on.is_(None), Filing.revoked_on > on),
            )
            .values(revoked_on=on)
            .returning(Filing)
        )
    ).first()
    if row is None:
        existing = (await conn.execute(select(Filing).where(Filing.id == filing_id))).first()
        if existing is None:
            raise HTTPException(404, f"no filing {filing_id}")
        return filing_out(existing)  # already revoked on that day or earlier
    await registry_changed(conn)
    await audit.record(conn, admin, "filing.revoke", f"filing:{filing_id}", revoked_on=on)
    return filing_out(row)
