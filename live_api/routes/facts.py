"""Attendance, tracks and rejected messages (CONTRACT section 2)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Response
from geoalchemy2.shape import to_shape
from sqlalchemy import select

from geofence.codes import code_prefix
from live_api import schemas
from live_api.auth import Caller
from live_api.deps import Conn, CurrentCaller, SettingsDep, Since, as_utc, scope_region, unknown
from live_api.history_formats import download
from store.models import (
    Engineer,
    Fix,
    Project,
    RejectedMessage,
)
from store.queries import attendance

router = APIRouter(prefix="/api")
log = logging.getLogger("sitewatch.api")

LocalDate = Query(default=None, description="local date YYYY-MM-DD; default today")


def _region_filter(caller: Caller, region: str | None) -> str | None:
    return scope_region(caller, region)  # 403 for a regulator naming another region


@router.get("/attendance", response_model=list[schemas.AttendanceOut], tags=["attendance"])
async def get_attendance(
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    engineer_id: str | None = Query(default=None, max_length=64),
    project_id: str | None = Query(default=None, max_length=64),
    date: dt.date | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Per engineer, project and local day; `date`, or a range of at most 92 days."""
    if date_from and date_to and not dt.timedelta(0) <= date_to - date_from <= dt.timedelta(92):
        raise HTTPException(422, "date_to must be 0 to 92 days after date_from")
    if (date_from is None) != (date_to is None):
        raise HTTPException(422, "give both date_from and date_to, or neither")
    # scoped in SQL, so that nobody makes the server work out attendance they may not see
    scope: dict[str, Any] = {}
    if caller.role == "vendor":
        return []
    if caller.role == "engineer":
        if engineer_id not in (None, caller.engineer_id):
            return []
        engineer_id = caller.engineer_id
    elif caller.role == "regulator":
        scope["region_prefix"] = code_prefix(caller.region_code or "")
    rows = await attendance(
        conn,
        max_gap_s=settings.max_gap_s,
        max_shift_s=settings.max_shift_s,
        min_minutes_present=settings.min_minutes_present,
        engineer_id=engineer_id,
        project_id=project_id,
        date=date,
        date_from=date_from,
        date_to=date_to,
        **scope,
    )
    return [
        r for r in rows if caller.sees(region_code=r["region_code"], engineer_id=r["engineer_id"])
    ]


@router.get("/engineers/{engineer_id}/track", tags=["engineers"])
async def track(
    engineer_id: str,
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    date: dt.date | None = LocalDate,
) -> dict[str, Any]:
    """GeoJSON FeatureCollection of that local day's accepted fixes (Points), in time order."""
    if date is None:
        date = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    eng = (
        await conn.execute(select(Engineer.registered_region).where(Engineer.id == engineer_id))
    ).first()
    if eng is None:
        raise unknown(caller, "engineer", engineer_id)
    rows = (
        await conn.execute(
            select(Fix)
            .where(Fix.engineer_id == engineer_id, Fix.local_date == date)
            .order_by(Fix.ts, Fix.msg_id)
        )
    ).all()
    visible = [r for r in rows if caller.sees(region_code=r.region_code, engineer_id=engineer_id)]
    if not visible and not caller.sees(region_code=eng.registered_region, engineer_id=engineer_id):
        raise HTTPException(403, f"engineer {engineer_id!r} is outside your region or role")
    features = []
    for r in visible:
        p = to_shape(r.geom)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [p.x, p.y]},
                "properties": {
                    "msg_id": r.msg_id,
                    "ts": r.ts.isoformat(),
                    "acc_m": r.acc_m,
                    "kind": r.kind,
                    "source": r.source,
                    "project_ids": r.project_ids,
                    "region_code": r.region_code,
                    "speed_kmh": r.speed_kmh,
                    "battery": r.battery,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


@router.get("/ingest/rejected", response_model=list[schemas.RejectedOut], tags=["ingest"])
async def rejected(
    conn: Conn,
    caller: CurrentCaller,
    since: dt.datetime | None = Since,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[Any]:
    if caller.role != "admin":
        raise HTTPException(403, "rejected messages are visible to admins only")
    q = select(RejectedMessage).order_by(RejectedMessage.received_at.desc()).limit(limit)
    if since:
        q = q.where(RejectedMessage.received_at >= as_utc(since))
    return [dict(r._mapping) for r in (await conn.execute(q)).all()]


# --- monthly attendance report ----------------------------------------------------------

SUMMARY_COLUMNS = [
    "month",
    "region_code",
    "project_id",
    "project_name",
    "engineer_id",
    "engineer_name",
    "days_on_site",
    "days_present",
    "minutes_on_site",
    "required_days_per_month",
    "meets_requirement",
]
DAY_COLUMNS = [
    "date",
    "region_code",
    "project_id",
    "project_name",
    "engineer_id",
    "engineer_name",
    "first_in",
    "last_out",
    "minutes_on_site",
    "present",
]


def _month(value: str) -> tuple[dt.date, dt.date]:
    try:
        first = dt.date.fromisoformat(value + "-01")
    except ValueError as exc:
        raise HTTPException(422, f"month {value!r} is not YYYY-MM (for example 2026-03)") from exc
    if not 2000 <= first.year <= 2100:
        raise HTTPException(422, f"month {value!r} is outside the years 2000..2100")
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


@router.get(
    "/reports/attendance.csv",
    tags=["attendance"],
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with a header"}},
)
async def attendance_report(
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    month: str = Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (local dates)"),
    region: str | None = Query(
        default=None, max_length=9, description="6-digit code; a regulator's own by default"
    ),
    detail: Literal["summary", "day"] = Query(
        default="summary",
        description="summary: one row per engineer and project; day: one row per local day",
    ),
) -> Response:
    """Monthly attendance of a region's projects (CONTRACT section 4 attendance), as CSV.

    `summary`: per engineer and project, the days on site, the days present
    (`minutes_on_site >= min_minutes_present`), the minutes, and whether the project's
    `required_days_per_month` is met. `day`: the daily rows of `GET /api/attendance`, times
    in local time with their offset. Regulators only see their region; admins any."""
    if caller.role not in ("admin", "regulator"):
        raise HTTPException(403, "attendance reports are for regulators and admins")
    first, last = _month(month)
    code = _region_filter(caller, region) or (
        caller.region_code if caller.role == "regulator" else None
    )
    rows = await attendance(
        conn,
        max_gap_s=settings.max_gap_s,
        max_shift_s=settings.max_shift_s,
        min_minutes_present=settings.min_minutes_present,
        date_from=first,
        date_to=last,
        region_prefix=code_prefix(code) if code else None,
    )
    rows = [r for r in rows if caller.sees(region_code=r["region_code"])]
    projects = {
        r.id: r
        for r in await conn.execute(
            select(Project.id, Project.name, Project.required_days_per_month).where(
                Project.id.in_({r["project_id"] for r in rows})
            )
        )
    }
    names = dict(
        (
            await conn.execute(
                select(Engineer.id, Engineer.name).where(
                    Engineer.id.in_({r["engineer_id"] for r in rows})
                )
            )
        ).all()
    )
    tz = ZoneInfo(settings.timezone)
    out = io.StringIO()
    if detail == "day":
        writer = csv.DictWriter(out, DAY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {
                    "date": r["date"],
                    "region_code": r["region_code"],
                    "project_id": r["project_id"],
                    "project_name": projects[r["project_id"]].name
                    if r["project_id"] in projects
                    else "",
                    "engineer_id": r["engineer_id"],
                    "engineer_name": names.get(r["engineer_id"], ""),
                    "first_in": _local(r["first_in"], tz),
                    "last_out": _local(r["last_out"], tz),
                    "minutes_on_site": f"{r['minutes_on_site']:.2f}",
                    "present": str(r["present"]).lower(),
                }
            )
    else:
        summary: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in rows:
            key = (r["region_code"], r["project_id"], r["engineer_id"])
            s = summary.setdefault(key, {"days": 0, "present": 0, "minutes": 0.0})
            s["days"] += 1
            s["present"] += int(r["present"])
            s["minutes"] += r["minutes_on_site"]
        writer = csv.DictWriter(out, SUMMARY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for (region_code, project_id, engineer_id), s in sorted(summary.items()):
            project = projects.get(project_id)
            required = project.required_days_per_month if project is not None else None
            writer.writerow(
                {
                    "month": month,
                    "region_code": region_code,
                    "project_id": project_id,
                    "project_name": project.name if project is not None else "",
                    "engineer_id": engineer_id,
                    "engineer_name": names.get(engineer_id, ""),
                    "days_on_site": s["days"],
                    "days_present": s["present"],
                    "minutes_on_site": f"{s['minutes']:.2f}",
                    "required_days_per_month": "" if required is None else required,
                    "meets_requirement": ""
                    if required is None
                    else str(s["present"] >= required).lower(),
                }
            )
    filename = f"attendance-{code or 'all'}-{month}{'-daily' if detail == 'day' else ''}.csv"
    return download(out.getvalue(), "text/csv; charset=utf-8", filename)


def _local(iso: str, tz: ZoneInfo) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(tz).isoformat()


__all__ = ["Project", "router"]
