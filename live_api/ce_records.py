"""Continuing-education records: what the routes (live_api.routes.continuing_education), the
registry's declared hours and the trainings write (CONTRACT §6.3)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from live_api import audit
from live_api.auth import Caller
from store.models import CeRecord


class CeRecordIn(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [{"year": 2026, "hours": 8, "kind": "online", "provider": "省建设监理协会"}]
        },
    }
    year: int = Field(ge=1990, le=2100)
    hours: float = Field(gt=0, le=200, allow_inf_nan=False)
    kind: Literal["online", "offline", "exam"]
    provider: str | None = Field(default=None, min_length=1, max_length=200)
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="the certificate or training id: a record with the same ref counts once",
    )

    @field_validator("ref")
    @classmethod
    def _not_declared(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("declared:"):
            raise ValueError("refs starting with 'declared:' are the registry's declared hours")
        return value


class CeRecordOut(BaseModel):
    id: int
    engineer_id: str
    year: int
    hours: float
    kind: str
    provider: str | None
    ref: str | None
    actor: str
    recorded_at: dt.datetime


def ce_out(row: Any) -> CeRecordOut:
    return CeRecordOut(
        id=row.id,
        engineer_id=row.engineer_id,
        year=row.year,
        hours=row.hours,
        kind=row.kind,
        provider=row.provider,
        ref=row.ref,
        actor=row.actor,
        recorded_at=row.recorded_at,
    )


async def add_record(
    conn: Any,
    actor: Caller | str,
    engineer_id: str,
    *,
    year: int,
    hours: float,
    kind: str,
    provider: str | None = None,
    ref: str | None = None,
) -> tuple[Any, bool]:
    """Insert a record unless its ref is there; (row, created). Audited when created."""
    name = actor if isinstance(actor, str) else actor.name
    values = dict(
        engineer_id=engineer_id,
        year=year,
        hours=hours,
        kind=kind,
        provider=provider,
        ref=ref,
        actor=name,
    )
    statement = pg_insert(CeRecord).values(**values)
    if ref is not None:
        statement = statement.on_conflict_do_nothing(
            index_elements=["engineer_id", "ref"], index_where=CeRecord.ref.isnot(None)
        )
    row = (await conn.execute(statement.returning(CeRecord))).first()
    if row is None:
        existing = await conn.execute(
            select(CeRecord).where(CeRecord.engineer_id == engineer_id, CeRecord.ref == ref)
        )
        return existing.one(), False
    await audit.record(
        conn,
        name,
        "ce_record.create",
        f"engineer:{engineer_id}",
        record=ce_out(row).model_dump(mode="json"),
    )
    return row, True


async def declare_hours(
    conn: Any, actor: Caller, engineer_id: str, hours: float, year: int
) -> None:
    """The hours declared on the registry entry: the `declared` record of `year`, replaced
    when declared again."""
    statement = pg_insert(CeRecord).values(
        engineer_id=engineer_id,
        year=year,
        hours=hours,
        kind="declared",
        ref=f"declared:{year}",
        actor=actor.name,
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=["engineer_id", "ref"],
            index_where=CeRecord.ref.isnot(None),
            set_={"hours": hours, "actor": actor.name, "recorded_at": dt.datetime.now(dt.UTC)},
        )
    )


def this_year(timezone: str) -> int:
    return dt.datetime.now(ZoneInfo(timezone)).year
