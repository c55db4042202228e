"""Alerts and their lifecycle, attendance, tracks and rejected messages (CONTRACT section 2)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from geoalchemy2.shape import to_shape
from sqlalchemy import select, update

from config import topics
from geofence.codes import code_prefix
from live_api import audit, schemas
from live_api.auth import Caller
from live_api.deps import Conn, CurrentCaller, SettingsDep, in_region, scope_region, unknown
from live_api.history_formats import download
from rules.alerts import live_alert
from store import alert_events
from store import evidence as store_evidence
from store import seals as seal_store
from store.models import (
    Alert,
    AlertEvent,
    AlertHistory,
    Engineer,
    Fix,
    Project,
    RejectedMessage,
)
from store.queries import attendance

router = APIRouter(prefix="/api")
log = logging.getLogger("sitewatch.api")

Since = Query(default=None, description="ISO-8601 date-time; naive means UTC")
LocalDate = Query(default=None, description="local date YYYY-MM-DD; default today")


def _region_filter(caller: Caller, region: str | None) -> str | None:
    return scope_region(caller, region)  # 403 for a regulator naming another region


async def _alert_out(conn: Any, rows: list[Any]) -> list[dict[str, Any]]:
    ids = [r.id for r in rows]
    history: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for h in await conn.execute(
            select(AlertHistory).where(AlertHistory.alert_id.in_(ids)).order_by(AlertHistory.id)
        ):
            history[h.alert_id].append(
                {"status": h.status, "note": h.note, "actor": h.actor, "at": h.at.isoformat()}
            )
    return [
        {
            "id": r.id,
            "type": r.type,
            "status": r.status,
            "region_code": r.region_code,
            "engineer_id": r.engineer_id,
            "device_id": r.device_id,
            "project_id": r.project_id,
            "ts": r.ts,
            "created_at": r.created_at,
            "details": r.details,
            "history": history[r.id],
        }
        for r in rows
    ]


@router.get("/alerts", response_model=list[schemas.AlertOut], tags=["alerts"])
async def list_alerts(
    conn: Conn,
    caller: CurrentCaller,
    type: str | None = Query(default=None, max_length=32),
    region: str | None = Query(default=None, max_length=9),
    engineer_id: str | None = Query(default=None, max_length=64),
    device_id: str | None = Query(default=None, max_length=64),
    status: Literal["open", "acked", "resolved"] | None = None,
    since: dt.datetime | None = Since,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    q = select(Alert).order_by(Alert.ts.desc()).limit(limit)
    if type:
        q = q.where(Alert.type == type)
    if region:
        q = q.where(in_region(Alert.region_code, _region_filter(caller, region) or ""))
    if caller.role == "regulator":  # scope before the limit
        q = q.where(in_region(Alert.region_code, caller.region_code or ""))
    if engineer_id:
        q = q.where(Alert.engineer_id == engineer_id)
    if device_id:
        q = q.where(Alert.device_id == device_id)
    if status:
        q = q.where(Alert.status == status)
    if since:
        q = q.where(Alert.ts >= (since if since.tzinfo else since.replace(tzinfo=dt.UTC)))
    rows = [
        r
        for r in (await conn.execute(q)).all()
        if caller.sees(region_code=r.region_code, engineer_id=r.engineer_id, device_id=r.device_id)
    ]
    return await _alert_out(conn, rows)


async def _transition(
    conn: Any, caller: Caller, alert_id: str, status: str, note: str | None
) -> dict[str, Any]:
    # locked: two changes of one alert at once (two regulators, or the worker closing it)
    # see each other's result instead of both passing the checks below
    row = (await conn.execute(select(Alert).where(Alert.id == alert_id).with_for_update())).first()
    if row is None:
        raise unknown(caller, "alert", alert_id)
    if caller.role not in ("admin", "regulator") or not caller.sees_region(row.region_code):
        raise HTTPException(403, f"alert {alert_id!r} is outside your region or role")
    if row.status == "resolved":
        raise HTTPException(409, f"alert {alert_id!r} is already resolved")
    if status == "acked" and row.status == "acked":
        raise HTTPException(409, f"alert {alert_id!r} is already acknowledged")
    await conn.execute(update(Alert).where(Alert.id == alert_id).values(status=status))
    await alert_events.changed(conn, [alert_id], status, note, caller.name)
    await audit.record(
        conn, caller, f"alert.{status}", f"alert:{alert_id}", before=row.status, note=note
    )
    row = (await conn.execute(select(Alert).where(Alert.id == alert_id))).one()
    return (await _alert_out(conn, [row]))[0]


async def _push_live(request: Request, alert: dict[str, Any]) -> None:
    """Tell every map whose region covers the alert that its status changed (the same `alert`
    message the worker sends for a new one). Runs after the response, so after the commit;
    a failure only costs the live update (REST has the truth), so it is logged, not raised."""
    gate = getattr(request.app.state, "gate", None)
    if gate is None:
        return
    try:
        await gate.producer.send_and_wait(
            topics.LIVE, key=b"live", value=orjson.dumps([live_alert(alert)])
        )
    except Exception as exc:  # noqa: BLE001 - Kafka down: the live update is best effort
        log.warning("alert %s changed but could not be pushed live: %r", alert["id"], exc)


@router.post("/alerts/{alert_id}/ack", response_model=schemas.AlertOut, tags=["alerts"])
async def ack_alert(
    alert_id: str,
    conn: Conn,
    caller: CurrentCaller,
    request: Request,
    background: BackgroundTasks,
    body: schemas.AlertAction | None = None,
) -> dict[str, Any]:
    out = await _transition(conn, caller, alert_id, "acked", body.note if body else None)
    background.add_task(_push_live, request, out)
    return out


@router.post("/alerts/{alert_id}/resolve", response_model=schemas.AlertOut, tags=["alerts"])
async def resolve_alert(
    alert_id: str,
    conn: Conn,
    caller: CurrentCaller,
    request: Request,
    background: BackgroundTasks,
    body: schemas.AlertAction | None = None,
) -> dict[str, Any]:
    out = await _transition(conn, caller, alert_id, "resolved", body.note if body else None)
    background.add_task(_push_live, request, out)
    return out


@router.get("/alerts/{alert_id}/verify", tags=["alerts"])
async def verify_alert(
    alert_id: str, conn: Conn, caller: CurrentCaller, settings: SettingsDep
) -> dict[str, Any]:
    """The alert's chain of events (docs/evidence.md, "Alerts"): every link, the stored alert
    and its history against what was chained, and the seals. `{ok, events, head}`; when not
    ok, `broken_at`, `reason` (hash_mismatch, prev_mismatch, seq_gap, fact_mismatch,
    fact_missing, history_mismatch, not_chained, seal_mismatch) and `message`."""
    await store_evidence.one_snapshot(conn)
    row = (await conn.execute(select(Alert.region_code).where(Alert.id == alert_id))).first()
    chained = await conn.execute(
        select(AlertEvent.seq).where(AlertEvent.alert_id == alert_id).limit(1)
    )
    if row is None and (caller.role != "admin" or chained.first() is None):
        raise unknown(caller, "alert", alert_id)  # a trimmed alert's chain: admins only
    if row is not None and not caller.sees_region(row.region_code):
        raise HTTPException(403, f"alert {alert_id!r} is outside your region or role")
    seals, problems = await run_in_threadpool(seal_store.trusted_seals, settings)
    out = await alert_events.verify(
        conn, alert_id, retention_days=settings.retention_days, seals=seals
    )
    if problems:  # a seal file altered or signed by another key: never trusted, always said
        seal_info = out.get("seals")
        out["seals"] = {
            **(seal_info if isinstance(seal_info, dict) else {}),
            "rejected_files": problems[:20],
        }
    return out


@router.get("/attendance", response_model=list[schemas.AttendanceOut], tags=["attendance"])
async def get_attendance(
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    engineer_id: str | None = Query(default=None, max_length=64),
    project_id: str | None = Query(default=None, max_length=64),
    date: dt.date | None = None,
) -> list[dict[str, Any]]:
    rows = await attendance(
        conn,
        max_gap_s=settings.max_gap_s,
        max_shift_s=settings.max_shift_s,
        min_minutes_present=settings.min_minutes_present,
        engineer_id=engineer_id,
        project_id=project_id,
        date=date,
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
        q = q.where(
            RejectedMessage.received_at >= (since if since.tzinfo else since.replace(tzinfo=dt.UTC))
        )
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
