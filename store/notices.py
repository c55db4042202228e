"""Notices in PostGIS (rules.notices): issue one, move it along its lifecycle with each step a
link of its chain (in the caller's transaction, under the notice's row lock), read them, and
find the ones `notice_overdue` is due for."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rules import notices as rules
from store.models import Notice, NoticeEvent

DUE_SQL = text(
    """
    SELECT n.id, n.engineer_id, n.project_id, n.region_code, n.deadline, n.settled_at,
           n.severity, n.responsible
    FROM notices n
    WHERE n.deadline <= :now AND (n.settled_at IS NULL OR n.settled_at > n.deadline)
      AND n.overdue_raised_at IS NULL
    ORDER BY n.deadline LIMIT 1000
    """
)


async def issue(conn: AsyncConnection, row: dict[str, Any], actor: str) -> bool:
    """A new notice (status open) and the first link of its chain, `issued`; False when the
    notice was issued before (nothing is written)."""
    created = await conn.execute(
        pg_insert(Notice).values(**row, status="open").on_conflict_do_nothing().returning(Notice.id)
    )
    if created.first() is None:
        return False
    details = {
        k: (v.isoformat() if isinstance(v, dt.datetime) else v)
        for k, v in row.items()
        if k in ("kind", "project_id", "text", "severity", "deadline", "responsible")
    }
    await _chain(conn, row["id"], rules.event("issued", actor, row["issued_at"], **details))
    return True


async def apply(
    conn: AsyncConnection, notice_id: str, action: str, actor: str, **details: Any
) -> Any:
    """Rectify, close or reopen (rules.notices.ACTIONS); raises `rules.NotAllowed`. Returns
    the notice's row after it."""
    row = (await conn.execute(select(Notice).where(Notice.id == notice_id).with_for_update())).one()
    status = rules.next_status(row.status, action)
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status in ("rectified", "closed") and row.settled_at is None:
        values["settled_at"] = now
    await conn.execute(update(Notice).where(Notice.id == notice_id).values(**values))
    await _chain(conn, notice_id, rules.event(action, actor, now, **details))
    return (await conn.execute(select(Notice).where(Notice.id == notice_id))).one()


async def _chain(conn: AsyncConnection, notice_id: str, event: dict[str, Any]) -> None:
    head = (
        await conn.execute(
            select(NoticeEvent.seq, NoticeEvent.hash)
            .where(NoticeEvent.notice_id == notice_id)
            .order_by(NoticeEvent.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev = (head.seq, head.hash) if head else (0, rules.genesis_hash(notice_id))
    canonical, digest = rules.link(prev, event)
    await conn.execute(
        insert(NoticeEvent).values(
            notice_id=notice_id,
            seq=seq + 1,
            event=event["event"],
            details=event,
            canonical=canonical,
            prev_hash=prev,
            hash=digest,
        )
    )


async def events(conn: AsyncConnection, notice_id: str) -> list[Any]:
    return list(
        await conn.execute(
            select(NoticeEvent).where(NoticeEvent.notice_id == notice_id).order_by(NoticeEvent.seq)
        )
    )


async def due(conn: AsyncConnection, now: dt.datetime) -> list[rules.Due]:
    """Notices past their deadline, not settled by it, without their `notice_overdue` yet."""
    return [
        rules.Due(
            r.id,
            r.engineer_id,
            r.project_id,
            r.region_code,
            r.deadline,
            r.settled_at,
            r.severity,
            r.responsible,
        )
        for r in await conn.execute(DUE_SQL, {"now": now})
    ]


async def mark_overdue(conn: AsyncConnection, notice_ids: list[str], at: dt.datetime) -> None:
    """Its `notice_overdue` was raised: never again (an alert trimmed by retention included)."""
    if notice_ids:
        await conn.execute(
            update(Notice).where(Notice.id.in_(notice_ids)).values(overdue_raised_at=at)
        )
