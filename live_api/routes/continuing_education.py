"""Continuing education (继续教育, CONTRACT §6.3): records per engineer and year. Credit and
eligibility read the sum of the year asked about (store.credit_facts.ce_hours_of).

An admin records any kind; an engineer reads their own. A record's `ref` (a certificate
number, a training id) is unique per engineer: posting the same `ref` again answers the
record already there (200) instead of counting the hours twice. The hours declared on the
engineer's registry entry (`ce_hours` of `POST`/`PATCH /api/engineers`) are the `declared`
record of the year they were declared in."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from live_api.ce_records import CeRecordIn, CeRecordOut, add_record, ce_out
from live_api.deps import Admin, Conn, CurrentCaller, SettingsDep
from live_api.routes.engineers import visible_engineer
from store.models import CeRecord

router = APIRouter(prefix="/api")


@router.post(
    "/engineers/{engineer_id}/ce-records",
    response_model=CeRecordOut,
    status_code=201,
    tags=["engineers"],
)
async def add_ce_record(
    engineer_id: str, body: CeRecordIn, response: Response, conn: Conn, admin: Admin
) -> CeRecordOut:
    """Admin only. 201 with the new record; 200 with the existing one when its `ref` was
    recorded for this engineer before."""
    await visible_engineer(conn, admin, engineer_id)
    row, created = await add_record(conn, admin, engineer_id, **body.model_dump(exclude_none=True))
    if not created:
        response.status_code = 200
    return ce_out(row)


@router.get(
    "/engineers/{engineer_id}/ce-records", response_model=list[CeRecordOut], tags=["engineers"]
)
async def list_ce_records(
    engineer_id: str,
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    year: int | None = None,
) -> list[CeRecordOut]:
    """The engineer's records, oldest first; `year` keeps one year's. To whoever may read the
    engineer."""
    await visible_engineer(conn, caller, engineer_id)
    query = select(CeRecord).where(CeRecord.engineer_id == engineer_id).order_by(CeRecord.id)
    if year is not None:
        if not 1990 <= year <= 2100:
            return []
        query = query.where(CeRecord.year == year)
    return [ce_out(r) for r in await conn.execute(query.limit(10_000))]
