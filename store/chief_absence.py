"""What `chief_absent` reads (rules.chief_absence): the active projects with a chief and a
monthly requirement, and the attendance of their engineers over the months judged."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules.chief_absence import Duty
from store.queries import DEFAULT_MAX_SHIFT_S, attendance_sql

DUTIES_SQL = text(
    """
    SELECT id, region_code, chief_engineer_id, coalesce(engineer_ids, '{}'),
           required_days_per_month,
           (SELECT max(a.at) FROM audit_log a
            WHERE a.target = 'project:' || projects.id AND a.action = 'project.update'
              AND a.details->'changes' ? 'chief_engineer_id') AS chief_since
    FROM projects
    WHERE retired_at IS NULL AND chief_engineer_id IS NOT NULL
      AND coalesce(required_days_per_month, 0) > 0
      AND coalesce(properties->>'status', 'active') = 'active'
    """
)
ATTENDANCE = text(
    attendance_sql("f.engineer_id = ANY(CAST(:e AS text[])) AND f.local_date BETWEEN :lo AND :hi")
)


async def duties(conn: AsyncConnection) -> list[Duty]:
    return [
        Duty(r[0], r[1], r[2], tuple(r[3]), int(r[4]), chief_since=r[5])
        for r in await conn.execute(DUTIES_SQL)
    ]


async def attendance_of(
    conn: AsyncConnection,
    duties: list[Duty],
    first: dt.date,
    last: dt.date,
    *,
    max_gap_s: float,
    max_shift_s: float = DEFAULT_MAX_SHIFT_S,
) -> list[tuple[str, str, dt.date, float]]:
    """(engineer, project, local date, minutes on site) of the duties' engineers at their
    projects between two local dates (inclusive)."""
    pairs = {(e, d.project_id) for d in duties for e in (d.chief, *d.members)}
    engineers = sorted({e for e, _ in pairs})
    if not engineers:
        return []
    rows: Any = await conn.execute(
        ATTENDANCE,
        {
            "e": engineers,
            "lo": first,
            "hi": last,
            "max_gap_s": max_gap_s,
            "max_shift_s": max_shift_s,
        },
    )
    return [
        (r.engineer_id, r.project_id, r.local_date, float(r.minutes_on_site))
        for r in rows
        if (r.engineer_id, r.project_id) in pairs
    ]
