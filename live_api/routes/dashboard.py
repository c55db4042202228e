"""A region's figures for the console's dashboard: engineers registered and on site today,
alerts by type per day, notice closure, record categories and the districts compared. One
call, a handful of aggregate queries; admins and regulators only."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import text

from geofence.codes import code_prefix
from live_api.deps import Conn, CurrentCaller, SettingsDep, scope_region

router = APIRouter(prefix="/api")

ENGINEERS_SQL = text(
    "SELECT count(*) AS registered,"
    " count(*) FILTER (WHERE cert_status = 'valid') AS valid"
    " FROM engineers WHERE retired_at IS NULL AND starts_with(registered_region, :prefix)"
)
# engineers assigned to a live project of the region, and those of them with a fix on one of
# the region's sites on the local day (a site elsewhere is another region's business)
ON_SITE_SQL = text(
    "WITH assigned AS ("
    "  SELECT DISTINCT unnest(array_append(engineer_ids, chief_engineer_id)) AS engineer_id"
    "  FROM projects WHERE retired_at IS NULL AND starts_with(region_code, :prefix))"
    " SELECT (SELECT count(*) FROM assigned WHERE engineer_id IS NOT NULL) AS assigned,"
    " (SELECT count(DISTINCT f.engineer_id) FROM fixes f"
    "  WHERE f.local_date = :today AND f.engineer_id IN (SELECT engineer_id FROM assigned)"
    "  AND f.project_ids && ARRAY(SELECT id::text FROM projects"
    "   WHERE retired_at IS NULL AND starts_with(region_code, :prefix))) AS on_site"
)
ALERTS_SQL = text(
    "SELECT (ts AT TIME ZONE :tz)::date AS day, type, count(*) AS n FROM alerts"
    " WHERE starts_with(region_code, :prefix) AND ts >= :since GROUP BY 1, 2 ORDER BY 1, 2"
)
NOTICES_SQL = text(
    "SELECT count(*) AS issued, count(*) FILTER (WHERE status = 'closed') AS closed,"
    " count(*) FILTER (WHERE status <> 'closed' AND deadline < now()) AS overdue"
    " FROM notices WHERE starts_with(region_code, :prefix)"
)
CATEGORIES_SQL = text(
    "SELECT coalesce(l.category, 'other') AS category, count(*) AS n"
    " FROM supervision_logs l JOIN projects p ON p.id = l.project_id"
    " WHERE starts_with(p.region_code, :prefix) AND l.local_date >= :since_day"
    " GROUP BY 1 ORDER BY 2 DESC"
)
DISTRICTS_SQL = text(
    "WITH p AS (SELECT id, rpad(left(region_code, :child_len), 6, '0') AS code FROM projects"
    "  WHERE retired_at IS NULL AND starts_with(region_code, :prefix)),"
    " a AS (SELECT rpad(left(region_code, :child_len), 6, '0') AS code, count(*) AS alerts,"
    "  count(*) FILTER (WHERE status = 'open') AS open_alerts FROM alerts"
    "  WHERE starts_with(region_code, :prefix) AND ts >= :since GROUP BY 1),"
    " l AS (SELECT p.code, count(*) AS records FROM supervision_logs s JOIN p ON p.id = s.project_id"
    "  WHERE s.local_date >= :since_day GROUP BY 1)"
    " SELECT c.code, r.name, coalesce(pc.projects, 0) AS projects,"
    " coalesce(a.alerts, 0) AS alerts, coalesce(a.open_alerts, 0) AS open_alerts,"
    " coalesce(l.records, 0) AS records"
    " FROM (SELECT code FROM p UNION SELECT code FROM a) c"
    " LEFT JOIN (SELECT code, count(*) AS projects FROM p GROUP BY 1) pc ON pc.code = c.code"
    " LEFT JOIN a ON a.code = c.code LEFT JOIN l ON l.code = c.code"
    " LEFT JOIN regions r ON r.code = c.code ORDER BY c.code"
)


@router.get("/dashboard", tags=["alerts"])
async def dashboard(
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    region: str | None = Query(default=None, max_length=9),
    days: int = Query(default=30, ge=1, le=366),
) -> dict[str, Any]:
    """The figures of a region (a regulator's own by default; an admin's whole registry) over
    the last `days` local days."""
    if caller.role not in ("admin", "regulator"):
        raise HTTPException(403, "the dashboard is for admins and regulators")
    code = scope_region(caller, region) or (
        caller.region_code if caller.role == "regulator" else None
    )
    if code is not None and not code_prefix(code):
        raise HTTPException(422, "region 000000 covers nothing: name a province, city or district")
    prefix = code_prefix(code) if code else ""
    tz = ZoneInfo(settings.timezone)
    today = dt.datetime.now(tz).date()
    since_day = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(since_day, dt.time(), tz)
    window = {"prefix": prefix, "since": since, "since_day": since_day, "tz": settings.timezone}
    engineers = (await conn.execute(ENGINEERS_SQL, window)).one()
    on_site = (await conn.execute(ON_SITE_SQL, {**window, "today": today})).one()
    notices = (await conn.execute(NOTICES_SQL, window)).one()
    child_len = max(4, min(len(prefix) + 2, 6))  # the cities of a province or the whole
    return {
        "region_code": code,
        "days": days,
        "since": since_day.isoformat(),
        "today": today.isoformat(),
        "engineers": {
            "registered": engineers.registered,
            "valid": engineers.valid,
            "assigned": on_site.assigned,
            "on_site_today": on_site.on_site,
            "on_site_rate": _rate(on_site.on_site, on_site.assigned),
        },
        "alerts_by_day": [
            {"date": r.day.isoformat(), "type": r.type, "count": r.n}
            for r in await conn.execute(ALERTS_SQL, window)
        ],
        "notices": {
            "issued": notices.issued,
            "closed": notices.closed,
            "overdue": notices.overdue,
            "closure_rate": _rate(notices.closed, notices.issued),
        },
        "record_categories": [
            {"category": r.category, "count": r.n}
            for r in await conn.execute(CATEGORIES_SQL, window)
        ],
        "districts": [
            dict(r._mapping)
            for r in await conn.execute(DISTRICTS_SQL, {**window, "child_len": child_len})
        ],
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
