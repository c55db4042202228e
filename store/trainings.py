"""Crediting offline trainings (rules.training): the fixes inside each ended training, and
the `offline` CE records of its attendees, each exactly once (the record's `ref` is the
training id, unique per engineer: a second pass, another worker or a restart adds nothing).

A training is looked at again until `allowed_lateness_s` has passed after its end, or after
its registration when it was registered after it ended (a fix that arrives late still counts,
and so do the fixes of a replay or backfill that comes with a past training), then settled.
Crediting early is safe: more fixes inside only add minutes (rules.training)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules.training import attendees

DUE_SQL = text(
    "SELECT id, name, starts_at, ends_at, hours, min_minutes_present,"
    " greatest(ends_at, created_at) AS late_from FROM trainings"
    " WHERE settled_at IS NULL AND ends_at <= :now ORDER BY ends_at LIMIT 100"
)
INSIDE_SQL = text(
    """
    SELECT f.engineer_id, extract(epoch FROM f.ts) AS ts
    FROM fixes f JOIN trainings t ON t.id = :id
    JOIN engineers e ON e.id = f.engineer_id AND e.retired_at IS NULL
    WHERE f.ts >= t.starts_at AND f.ts <= t.ends_at
      AND (f.acc_m IS NULL OR f.acc_m <= :max_acc)
      AND ST_Covers(t.geom, f.geom)
    """
)
CREDIT_SQL = text(
    """
    INSERT INTO ce_records (engineer_id, year, hours, kind, provider, ref, actor)
    SELECT e, :year, :hours, 'offline', CAST(:name AS text), CAST(:ref AS text),
           'training:' || CAST(:ref AS text)
    FROM unnest(CAST(:engineers AS text[])) AS e
    ON CONFLICT (engineer_id, ref) WHERE ref IS NOT NULL DO NOTHING
    RETURNING engineer_id
    """
)


async def credit_ended(
    conn: AsyncConnection,
    *,
    now: dt.datetime,
    max_gap_s: float,
    max_accuracy_m: float,
    allowed_lateness_s: float,
    timezone: str,
) -> dict[str, list[str]]:
    """Credit the attendees of every ended, unsettled training; {training: newly credited}."""
    credited: dict[str, list[str]] = {}
    for t in (await conn.execute(DUE_SQL, {"now": now})).all():
        rows: Any = await conn.execute(INSIDE_SQL, {"id": t.id, "max_acc": max_accuracy_m})
        present = attendees(
            ((r.engineer_id, float(r.ts)) for r in rows),
            max_gap_s=max_gap_s,
            min_minutes_present=t.min_minutes_present,
        )
        new = []
        if present:
            new = list(
                (
                    await conn.execute(
                        CREDIT_SQL,
                        {
                            "year": t.starts_at.astimezone(ZoneInfo(timezone)).year,
                            "hours": t.hours,
                            "name": t.name,
                            "ref": t.id,
                            "engineers": sorted(present),
                        },
                    )
                ).scalars()
            )
        if now - t.late_from >= dt.timedelta(seconds=allowed_lateness_s):
            await conn.execute(
                text("UPDATE trainings SET settled_at = :now WHERE id = :id"),
                {"now": now, "id": t.id},
            )
        credited[t.id] = sorted(new)
    return credited
