"""What the credit score and the filing rules read from the store (rules.credit)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules import credit as credit_model
from rules.certificate import Certificate, StatusEntry
from store.queries import DEFAULT_MAX_SHIFT_S, attendance_sql


async def credit_facts(
    conn: AsyncConnection,
    engineer_id: str,
    *,
    end: dt.date,
    window_days: int,
    max_gap_s: float,
    min_minutes_present: float,
    timezone: str,
    now: dt.datetime | None = None,
    max_shift_s: float = DEFAULT_MAX_SHIFT_S,
) -> credit_model.CreditFacts:
    """Everything the credit score needs, read with indexed queries over the window."""
    tz = ZoneInfo(timezone)
    start = end - dt.timedelta(days=window_days - 1)
    projects = (
        await conn.execute(
            text(
                "SELECT id, required_days_per_month, created_at FROM projects "
                "WHERE (chief_engineer_id = :e OR :e = ANY(engineer_ids)) "
                "AND coalesce(required_days_per_month, 0) > 0 AND retired_at IS NULL "
                # a suspended project has no fence: nobody can be present there
                "AND coalesce(properties->>'status', 'active') <> 'suspended'"
            ),
            {"e": engineer_id},
        )
    ).all()
    requirements = [
        credit_model.ProjectRequirement(
            p.id, int(p.required_days_per_month), p.created_at.astimezone(tz).date()
        )
        for p in projects
    ]
    present: dict[str, set[dt.date]] = defaultdict(set)
    if requirements:
        sql = attendance_sql(
            "f.engineer_id = :engineer_id AND f.local_date BETWEEN :start AND :end"
        )
        for r in await conn.execute(
            text(sql),
            {
                "engineer_id": engineer_id,
                "start": start,
                "end": end,
                "max_gap_s": max_gap_s,
                "max_shift_s": max_shift_s,
            },
        ):
            if float(r.minutes_on_site) >= min_minutes_present:
                present[r.project_id].add(r.local_date)
    window_start = dt.datetime.combine(start, dt.time(), tz)
    window_end = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz)
    alert_rows = (
        await conn.execute(
            text(
                "SELECT a.id, a.type, a.status, a.ts, EXISTS ("
                "  SELECT 1 FROM alert_history h WHERE h.alert_id = a.id AND h.actor = 'system'"
                "  AND h.note LIKE 'retracted%') AS retracted "
                "FROM alerts a WHERE a.engineer_id = :e AND a.ts >= :s AND a.ts < :t"
            ),
            {"e": engineer_id, "s": window_start, "t": window_end},
        )
    ).all()
    notice_rows = (
        await conn.execute(
            text(
                "SELECT n.id, n.deadline, n.issued_at, (SELECT min(CAST(e.details->>'at' AS "
                "  timestamptz)) FROM notice_events e WHERE e.notice_id = n.id "
                "  AND e.event = 'close') AS closed "
                "FROM notices n WHERE n.engineer_id = :e AND ((n.deadline >= :s AND n.deadline < :t)"
                " OR (n.issued_at >= :s AND n.issued_at < :t))"
            ),
            {"e": engineer_id, "s": window_start, "t": window_end},
        )
    ).all()
    return credit_model.CreditFacts(
        engineer_id=engineer_id,
        start=start,
        end=end,
        now=now or dt.datetime.now(dt.UTC),
        requirements=requirements,
        present={k: frozenset(v) for k, v in present.items()},
        alerts=[
            credit_model.AlertFact(a.id, a.type, a.status, a.ts, bool(a.retracted))
            for a in alert_rows
        ],
        notices=[
            credit_model.NoticeFact(n.id, n.deadline, n.closed, n.issued_at) for n in notice_rows
        ],
    )


async def chief_projects(
    conn: AsyncConnection, engineer_id: str, *, today: dt.date, exclude: str
) -> list[str]:
    """Active projects (rules.credit.is_active_project) the engineer leads as chief."""
    rows = (
        await conn.execute(
            text(
                "SELECT id, properties FROM projects WHERE chief_engineer_id = :e AND id <> :p"
                " AND retired_at IS NULL"
            ),
            {"e": engineer_id, "p": exclude},
        )
    ).all()
    return sorted(r.id for r in rows if credit_model.is_active_project(r.properties, today))


# --------------------------------------------------------------------------- history


__all__ = ["chief_projects", "credit_facts"]


async def certificate_of(conn: AsyncConnection, engineer_id: str) -> Certificate:
    """The engineer's certificate with its status history (rules.certificate)."""
    row = (
        await conn.execute(
            text("SELECT cert_status, cert_valid_to FROM engineers WHERE id = :e"),
            {"e": engineer_id},
        )
    ).one()
    entries = [
        StatusEntry(r.from_date, r.status, r.id, r.recorded)
        for r in await conn.execute(
            text(
                "SELECT id, status, from_date, row_number() OVER (ORDER BY recorded_at, id)"
                " AS recorded FROM cert_status_history WHERE engineer_id = :e"
            ),
            {"e": engineer_id},
        )
    ]
    return Certificate.of(entries, valid_to=row.cert_valid_to, current_status=row.cert_status)


async def ce_hours_of(
    conn: AsyncConnection, engineer_id: str, year: int
) -> tuple[float, list[int]]:
    """The year's continuing-education hours and the records they sum."""
    rows = (
        await conn.execute(
            text(
                "SELECT id, hours FROM ce_records WHERE engineer_id = :e AND year = :y ORDER BY id"
            ),
            {"e": engineer_id, "y": year},
        )
    ).all()
    return float(sum(r.hours for r in rows)), [int(r.id) for r in rows]
