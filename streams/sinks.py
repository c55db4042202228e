"""Idempotent writes to PostGIS: every row has its natural unique key and a redelivered batch
changes nothing (INSERT ... ON CONFLICT DO NOTHING)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from store import alert_events
from store.models import (
    Alert,
    Fix,
    OwnTracksEvent,
    RejectedMessage,
    SupervisionLog,
    Telemetry,
    Transition,
)
from streams import bulk

CHUNK = 1000


async def insert_new(conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows that are new (ON CONFLICT DO NOTHING), batched with unnest
    (streams.bulk: about 20x the rows/s of multi-row VALUES here); returns how many were new."""
    return await bulk.insert_new(conn, model, rows)


async def insert_new_keys(
    conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]], keys: tuple[str, ...]
) -> set[tuple[Any, ...]]:
    """`insert_new`, returning the `keys` of the rows that were new."""
    return await bulk.insert_new_keys(conn, model, rows, keys)


async def insert_alerts(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert alerts once per identity (the id); returns the ones that are new (they open a
    history). When the same identity comes again with an earlier event time (a fix that
    arrived out of order), the alert keeps the earliest evidence: its `ts` and `details` move
    back, nothing else changes (status, history, created_at). A redelivered batch carries the
    same times, so it changes nothing."""
    if not rows:
        return []
    earliest: dict[str, dict[str, Any]] = {}
    for r in rows:
        kept = earliest.get(r["id"])
        if kept is None or r["ts"] < kept["ts"]:
            earliest[r["id"]] = r
    unique = list(earliest.values())
    created: dict[str, Any] = {}
    moved: list[dict[str, Any]] = []
    for start in range(0, len(unique), CHUNK):
        values = pg_insert(Alert).values(unique[start : start + CHUNK])
        upsert = values.on_conflict_do_update(
            index_elements=[Alert.id],
            set_={"ts": values.excluded.ts, "details": values.excluded.details},
            where=values.excluded.ts < Alert.ts,
        ).returning(
            Alert.id, Alert.created_at, Alert.ts, Alert.details, text("(xmax = 0) AS inserted")
        )
        for row in await conn.execute(upsert):
            if row.inserted:
                created[row.id] = row.created_at
            else:
                moved.append({"id": row.id, "ts": row.ts, "details": row.details})
    new = [{**r, "created_at": created[r["id"]]} for r in unique if r["id"] in created]
    await alert_events.opened(conn, new)
    await alert_events.revised(conn, moved)
    return new


async def retract(conn: AsyncConnection, event_ids: Sequence[str]) -> None:
    """Events invalidated by a late fix (ids "{engineer}:{event}"): the transition disappears,
    an impossible-travel alert built on it is resolved, with the reason in its history."""
    if not event_ids:
        return
    await conn.execute(delete(Transition).where(Transition.id.in_(event_ids)))
    await retract_alerts(
        conn, [f"impossible_travel:{i}" for i in event_ids], "a late fix changed the pair"
    )


async def retract_alerts(conn: AsyncConnection, alert_ids: Sequence[str], why: str) -> list[str]:
    """Resolve the alerts (those not resolved yet) whose situation no longer holds, noting
    `retracted: {why}` in their history (the credit does not count them, rules.credit)."""
    if not alert_ids:
        return []
    result = await conn.execute(
        update(Alert)
        .where(Alert.id.in_(alert_ids), Alert.status != "resolved")
        .values(status="resolved")
        .returning(Alert.id)
    )
    resolved = [r.id for r in result]
    await alert_events.changed(conn, resolved, "resolved", f"retracted: {why}", "system")
    return resolved


__all__ = [
    "Fix",
    "OwnTracksEvent",
    "RejectedMessage",
    "SupervisionLog",
    "Telemetry",
    "Transition",
    "insert_alerts",
    "insert_new",
    "retract",
    "retract_alerts",
]
