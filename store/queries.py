"""Queries shared by the API and the stream worker."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules.attendance import Tally, to_us

# Minutes on site are the length of the union of (CONTRACT section 4 and §6.5): the gaps of at
# most max_gap_s between consecutive on-site fixes, and each check-in to the next check-in or
# check-out event when that is a check-out at most max_shift_s later. Without check-outs the
# union is the sum of the gaps, as before.
# `{source}` is FIXES_SOURCE unless the caller has (engineer, project, day) keys: then
# KEYED_SOURCE reads each key's fixes through ix_fixes_engineer_day_ts. Each group's region is
# one look-up of its project, after grouping. As joins (`(engineer, project, day) IN (keys)`
# and `JOIN projects`) the planner scanned every fix and every project for the worker's
# recomputed keys: 81 ms for 300 keys in 200,000 fixes, every batch that met new keys.
FIXES_SOURCE = "fixes f CROSS JOIN LATERAL unnest(f.project_ids) AS p(project_id)"
KEYED_SOURCE = (
    "unnest(CAST(:k_e AS text[]), CAST(:k_p AS text[]), CAST(:k_d AS date[])) AS k(e, p, d) "
    "CROSS JOIN LATERAL (SELECT x.* FROM fixes x WHERE x.engineer_id = k.e "
    "AND x.local_date = k.d OFFSET 0) f CROSS JOIN LATERAL unnest(f.project_ids) AS p(project_id)"
)
ATTENDANCE_SQL = """
WITH on_site AS (
    SELECT f.engineer_id, p.project_id, f.local_date, f.ts, f.kind,
           lag(f.ts) OVER (PARTITION BY f.engineer_id, p.project_id, f.local_date ORDER BY f.ts) AS prev_ts
    FROM {source}
    WHERE ({where})
),
checks AS (
    SELECT engineer_id, project_id, local_date, ts, kind,
           lead(ts) OVER (PARTITION BY engineer_id, project_id, local_date ORDER BY ts) AS next_ts,
           lead(kind) OVER (PARTITION BY engineer_id, project_id, local_date ORDER BY ts) AS next_kind
    FROM on_site WHERE kind IN ('checkin', 'checkout')
),
spans AS (
    SELECT engineer_id, project_id, local_date, tstzrange(prev_ts, ts) AS span FROM on_site
    WHERE ts - prev_ts <= make_interval(secs => :max_gap_s)
    UNION ALL
    SELECT engineer_id, project_id, local_date, tstzrange(ts, next_ts) FROM checks
    WHERE kind = 'checkin' AND next_kind = 'checkout'
      AND next_ts - ts <= make_interval(secs => :max_shift_s)
),
covered AS (
    SELECT engineer_id, project_id, local_date,
           (SELECT coalesce(sum(extract(epoch FROM upper(x) - lower(x))), 0)
            FROM unnest(range_agg(span)) AS x) / 60.0 AS minutes_on_site
    FROM spans GROUP BY engineer_id, project_id, local_date
)
SELECT g.*, pr.region_code FROM (
    SELECT o.engineer_id, o.project_id, o.local_date, min(o.ts) AS first_in,
           max(o.ts) AS last_out, coalesce(c.minutes_on_site, 0) AS minutes_on_site
    FROM on_site o
    LEFT JOIN covered c ON c.engineer_id = o.engineer_id AND c.project_id = o.project_id
                       AND c.local_date = o.local_date
    GROUP BY o.engineer_id, o.project_id, o.local_date, c.minutes_on_site
) g CROSS JOIN LATERAL (SELECT x.region_code FROM projects x WHERE x.id = g.project_id OFFSET 0) pr
ORDER BY g.local_date, g.engineer_id, g.project_id
"""


def attendance_sql(where: str, *, keyed: bool = False) -> str:
    """ATTENDANCE_SQL over the fixes `where` selects (on `f` and `p`); `keyed` reads only the
    fixes of the (engineer, project, day) keys in `:k_e`, `:k_p`, `:k_d`."""
    if keyed:
        return ATTENDANCE_SQL.format(source=KEYED_SOURCE, where=f"({where}) AND p.project_id = k.p")
    return ATTENDANCE_SQL.format(source=FIXES_SOURCE, where=where)


DEFAULT_MAX_SHIFT_S = 43200.0  # config.Settings.max_shift_s


def attendance_row(row: Any, min_minutes_present: float) -> dict[str, Any]:
    minutes = round(float(row.minutes_on_site), 2)
    return {
        "engineer_id": row.engineer_id,
        "project_id": row.project_id,
        "date": row.local_date.isoformat(),
        "first_in": row.first_in.isoformat(),
        "last_out": row.last_out.isoformat(),
        "minutes_on_site": minutes,
        "present": minutes >= min_minutes_present,
        "region_code": row.region_code,
    }


async def attendance(
    conn: AsyncConnection,
    *,
    max_gap_s: float,
    min_minutes_present: float,
    max_shift_s: float = DEFAULT_MAX_SHIFT_S,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Attendance per engineer, project and local day, computed from the stored on-site fixes
    (CONTRACT section 4), so late and redelivered fixes always give the same answer. Filters:
    those of `attendance_rows`."""
    rows = await attendance_rows(conn, max_gap_s=max_gap_s, max_shift_s=max_shift_s, **filters)
    return [attendance_row(r, min_minutes_present) for r in rows]


async def attendance_tallies(
    conn: AsyncConnection,
    *,
    max_gap_s: float,
    keys: list[tuple[str, str, dt.date]],
    max_shift_s: float = DEFAULT_MAX_SHIFT_S,
) -> list[tuple[tuple[str, str, dt.date], Tally]]:
    """The stored-fixes attendance of `keys` as the stream worker's live tallies
    (rules.attendance)."""
    if not keys:
        return []
    return [
        (
            (r.engineer_id, r.project_id, r.local_date),
            Tally(
                to_us(r.first_in),
                to_us(r.last_out),
                round(float(r.minutes_on_site) * 60_000_000),
                r.region_code,
            ),
        )
        for r in await attendance_rows(
            conn, max_gap_s=max_gap_s, max_shift_s=max_shift_s, keys=keys
        )
    ]


async def attendance_rows(
    conn: AsyncConnection,
    *,
    max_gap_s: float,
    max_shift_s: float = DEFAULT_MAX_SHIFT_S,
    engineer_id: str | None = None,
    project_id: str | None = None,
    date: dt.date | None = None,
    keys: list[tuple[str, str, dt.date]] | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    region_prefix: str | None = None,
) -> list[Any]:
    clauses = ["true"]
    params: dict[str, Any] = {"max_gap_s": max_gap_s, "max_shift_s": max_shift_s}
    if engineer_id is not None:
        clauses.append("f.engineer_id = :engineer_id")
        params["engineer_id"] = engineer_id
    if project_id is not None:
        clauses.append("p.project_id = :project_id")
        params["project_id"] = project_id
    if date is not None:
        clauses.append("f.local_date = :date")
        params["date"] = date
    if date_from is not None:
        clauses.append("f.local_date >= :date_from")
        params["date_from"] = date_from
    if date_to is not None:
        clauses.append("f.local_date <= :date_to")
        params["date_to"] = date_to
    if region_prefix is not None:
        # projects whose region the caller's region covers (code prefix, CONTRACT section 4)
        clauses.append(
            "p.project_id IN (SELECT id FROM projects WHERE starts_with(region_code, :region_prefix))"
        )
        params["region_prefix"] = region_prefix
    if keys:
        params["k_e"] = [k[0] for k in keys]
        params["k_p"] = [k[1] for k in keys]
        params["k_d"] = [k[2] for k in keys]
    sql = attendance_sql(" AND ".join(clauses), keyed=bool(keys))
    result = await conn.execute(text(sql), params)
    return list(result)


# The fixes of each engineer's closed days: one index range per engineer (LATERAL ... OFFSET 0,
# as store.evidence's look-ups). As a plain join, a batch closing the day of a few hundred
# engineers was a parallel scan of the whole of `fixes` (tests/test_db_plans.py).
UNLOGGED_DAYS_SQL = text(
    """
    WITH r(engineer_id, first_day, last_day) AS (
        SELECT * FROM unnest(CAST(:e AS text[]), CAST(:lo AS date[]), CAST(:hi AS date[]))
    )
    SELECT f.engineer_id, p.project_id, f.local_date, min(f.ts) AS first_in,
           max(f.ts) AS last_out, pr.region_code
    FROM r
    CROSS JOIN LATERAL (
        SELECT x.engineer_id, x.local_date, x.ts, x.project_ids FROM fixes x
        WHERE x.engineer_id = r.engineer_id AND x.local_date BETWEEN r.first_day AND r.last_day
        OFFSET 0
    ) f
    CROSS JOIN LATERAL unnest(f.project_ids) AS p(project_id)
    JOIN projects pr ON pr.id = p.project_id
    WHERE NOT EXISTS (
        SELECT 1 FROM supervision_logs l
        WHERE l.engineer_id = f.engineer_id AND l.local_date = f.local_date
          AND l.project_id = p.project_id
    )
    GROUP BY f.engineer_id, p.project_id, f.local_date, pr.region_code
    ORDER BY f.engineer_id, f.local_date, p.project_id
    """
)


async def unlogged_days(
    conn: AsyncConnection, checks: list[tuple[str, dt.date, dt.date]]
) -> list[Any]:
    """`missing_log` candidates: (engineer, project, local day) with on-site fixes at the
    project and no supervision log of that engineer for that project on that day, for the
    engineers' day ranges in `checks` ((engineer_id, first_day, last_day), inclusive)."""
    if not checks:
        return []
    result = await conn.execute(
        UNLOGGED_DAYS_SQL,
        {
            "e": [c[0] for c in checks],
            "lo": [c[1] for c in checks],
            "hi": [c[2] for c in checks],
        },
    )
    return list(result.all())
