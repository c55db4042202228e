"""`GET /api/projects/{id}/dossier` (CONTRACT §6.4): an investigation in one answer. Who was
assigned when; attendance per engineer and day; the practice records and the days an engineer
was on site without a log; the notices with their state; the alerts; and the evidence
verification of every engineer involved. As JSON, CSV or a printable PDF
(live_api.dossier_formats)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from attachments.files import FileStore
from live_api.deps import Conn, CurrentCaller, SettingsDep
from live_api.dossier_formats import as_csv, as_pdf
from live_api.history_formats import download
from live_api.routes.project_lifecycle import project_assignments, visible_project
from store import evidence as evidence_store
from store.queries import attendance

router = APIRouter(prefix="/api")
DEFAULT_DAYS = 90
MAX_DAYS = 400

RECORDS_SQL = text(
    """
    SELECT engineer_id, msg_id, kind, category, ts, local_date, text,
           jsonb_array_length(files) AS files,
           flags
    FROM supervision_logs
    WHERE project_id = :p AND local_date BETWEEN :lo AND :hi
    ORDER BY ts, engineer_id, msg_id
    """
)
NOTICES_SQL = text(
    """
    SELECT id, engineer_id, kind, text, severity, deadline, responsible, status, issued_at,
           settled_at, overdue_raised_at
    FROM notices WHERE project_id = :p AND issued_at < :end
    ORDER BY issued_at, id
    """
)
ALERTS_SQL = text(
    """
    SELECT id, type, status, engineer_id, device_id, ts FROM alerts
    WHERE project_id = :p AND ts >= :start AND ts < :end ORDER BY ts, id
    """
)


@router.get(
    "/projects/{project_id}/dossier",
    tags=["projects"],
    responses={200: {"content": {"application/json": {}, "text/csv": {}, "application/pdf": {}}}},
)
async def project_dossier(
    project_id: str,
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    from_: Annotated[dt.date | None, Query(alias="from")] = None,
    to: dt.date | None = None,
    format: Literal["json", "csv", "pdf"] = "json",  # noqa: A002 - the contract's name
) -> Response:
    """Local dates `from`..`to` (both included; default the last 90 days to today, at most
    400). To an admin, and to a regulator of the project's region."""
    if caller.role not in ("admin", "regulator"):
        raise HTTPException(403, "a dossier is for regulators and admins")
    project = await visible_project(conn, caller, project_id)
    tz = ZoneInfo(settings.timezone)
    last = to or dt.datetime.now(tz).date()
    first = from_ or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if last >= dt.date(2100, 1, 1) or first < dt.date(1990, 1, 1):
        raise HTTPException(422, "from and to are dates between 1990 and 2099")
    if first > last or (last - first).days >= MAX_DAYS:
        raise HTTPException(422, f"from..to is 1..{MAX_DAYS} days, from not after to")
    doc = await dossier(conn, caller, settings, project, first, last)
    name = f"dossier-{project_id}-{first}-{last}"
    if format == "csv":
        return download(as_csv(doc), "text/csv; charset=utf-8", f"{name}.csv")
    if format == "pdf":
        return download(await run_in_threadpool(as_pdf, doc), "application/pdf", f"{name}.pdf")
    return Response(_json(doc), media_type="application/json")


async def dossier(
    conn: Any, caller: Any, settings: Any, project: Any, first: dt.date, last: dt.date
) -> dict[str, Any]:
    tz = ZoneInfo(settings.timezone)
    start = dt.datetime.combine(first, dt.time(), tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)
    assignments = [a.model_dump() for a in await project_assignments(project.id, conn, caller)]
    days = await attendance(
        conn,
        max_gap_s=settings.max_gap_s,
        min_minutes_present=settings.min_minutes_present,
        max_shift_s=settings.max_shift_s,
        project_id=project.id,
        date_from=first,
        date_to=last,
    )
    params = {"p": project.id, "lo": first, "hi": last, "start": start, "end": end}
    records = [dict(r._mapping) for r in await conn.execute(RECORDS_SQL, params)]
    notices = [dict(r._mapping) for r in await conn.execute(NOTICES_SQL, params)]
    alerts = [dict(r._mapping) for r in await conn.execute(ALERTS_SQL, params)]
    involved = sorted(
        {a["engineer_id"] for a in assignments}
        | {d["engineer_id"] for d in days}
        | {r["engineer_id"] for r in records}
        | {n["engineer_id"] for n in notices}
    )
    logged = {(r["engineer_id"], r["local_date"].isoformat()) for r in records}
    on_site: dict[str, list[str]] = defaultdict(list)
    for d in days:
        on_site[d["engineer_id"]].append(d["date"])
    files = FileStore.of(settings.data_dir)
    engineers = []
    for engineer_id in involved:
        verified = await evidence_store.verify(
            conn, engineer_id, retention_days=settings.retention_days, file_digest=files.digest_of
        )
        engineers.append(
            {
                "engineer_id": engineer_id,
                "days_on_site": len(on_site[engineer_id]),
                "days_present": sum(d["present"] for d in days if d["engineer_id"] == engineer_id),
                "records": sum(r["engineer_id"] == engineer_id for r in records),
                "days_without_log": sorted(
                    day for day in on_site[engineer_id] if (engineer_id, day) not in logged
                ),
                "last_record": max(
                    (r["ts"] for r in records if r["engineer_id"] == engineer_id), default=None
                ),
                "evidence": verified.as_dict(),
            }
        )
    now = dt.datetime.now(dt.UTC)
    for n in notices:
        settled, deadline = n["settled_at"], n["deadline"]
        n["overdue"] = deadline <= now and (settled is None or settled > deadline)
    return {
        "project": {
            "id": project.id,
            "name": project.name,
            "region_code": project.region_code,
            "chief_engineer_id": project.chief_engineer_id,
            "engineer_ids": list(project.engineer_ids or []),
        },
        "period": {"from": first, "to": last, "timezone": settings.timezone},
        "generated_at": now,
        "assignments": assignments,
        "engineers": engineers,
        "attendance": days,
        "records": records,
        "notices": notices,
        "open_notices": [n["id"] for n in notices if n["status"] != "closed"],
        "alerts": alerts,
    }


def _json(doc: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
