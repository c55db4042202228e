"""Alerts and their lifecycle (CONTRACT section 2): listing with filters and paging, ack,
resolve, a note without a status change, and the alert's chain of events."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Literal

import orjson
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import ColumnElement, func, select, true, update

from config import topics
from live_api import audit, schemas
from live_api.auth import Caller
from live_api.deps import (
    Conn,
    CurrentCaller,
    SettingsDep,
    Since,
    as_utc,
    in_region,
    scope_region,
    unknown,
)
from rules.alerts import live_alert
from store import alert_events
from store import evidence as store_evidence
from store import seals as seal_store
from store.models import Alert, AlertEvent, AlertHistory


class AlertNote(BaseModel):
    note: str = Field(min_length=1, max_length=2000)

    @field_validator("note")
    @classmethod
    def _readable(cls, value: str) -> str:
        """Not blank, and no bidirectional controls: a note must read as it was written."""
        value = value.strip()
        if not value:
            raise ValueError("a note has some text")
        if any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in value):
            raise ValueError("a note must not hold bidirectional control characters")
        return value


router = APIRouter(prefix="/api")
log = logging.getLogger("sitewatch.api")

Until = Query(default=None, description="ISO-8601 date-time, exclusive; naive means UTC")
TOTAL_HEADER = "X-Total-Count"


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


def _visible(caller: Caller) -> ColumnElement[bool]:
    """What the caller may see, in SQL, so that paging and the total agree with `sees`."""
    if caller.role == "admin":
        return true()
    if caller.role == "regulator":
        return in_region(Alert.region_code, caller.region_code or "")
    if caller.role == "engineer":
        return Alert.engineer_id == (caller.engineer_id or "")
    if caller.role == "vendor":
        return Alert.device_id.in_(list(caller.device_ids))
    return Alert.id.is_(None)


@router.get("/alerts", response_model=list[schemas.AlertOut], tags=["alerts"])
async def list_alerts(
    conn: Conn,
    caller: CurrentCaller,
    response: Response,
    type: str | None = Query(default=None, max_length=32),
    region: str | None = Query(default=None, max_length=9),
    engineer_id: str | None = Query(default=None, max_length=64),
    device_id: str | None = Query(default=None, max_length=64),
    project_id: str | None = Query(default=None, max_length=64),
    status: Literal["open", "acked", "resolved"] | None = None,
    since: dt.datetime | None = Since,
    until: dt.datetime | None = Until,
    limit: int = Query(default=1000, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    """Newest first. `X-Total-Count` holds how many match the filters (for paging with
    `offset` and `limit`)."""
    conditions = [_visible(caller)]
    if type:
        conditions.append(Alert.type == type)
    if region:
        conditions.append(in_region(Alert.region_code, scope_region(caller, region) or ""))
    if engineer_id:
        conditions.append(Alert.engineer_id == engineer_id)
    if device_id:
        conditions.append(Alert.device_id == device_id)
    if project_id:
        conditions.append(Alert.project_id == project_id)
    if status:
        conditions.append(Alert.status == status)
    if since:
        conditions.append(Alert.ts >= as_utc(since))
    if until:
        conditions.append(Alert.ts < as_utc(until))
    total = (
        await conn.execute(select(func.count()).select_from(Alert).where(*conditions))
    ).scalar_one()
    response.headers[TOTAL_HEADER] = str(total)
    q = (
        select(Alert)
        .where(*conditions)
        .order_by(Alert.ts.desc(), Alert.id)
        .limit(limit)
        .offset(offset)
    )
    return await _alert_out(conn, list((await conn.execute(q)).all()))


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


async def _act(
    request: Request,
    background: BackgroundTasks,
    conn: Any,
    caller: Caller,
    alert_id: str,
    status: str,
    body: schemas.AlertAction | None,
) -> dict[str, Any]:
    out = await _transition(conn, caller, alert_id, status, body.note if body else None)
    background.add_task(_push_live, request, out)
    return out


@router.post("/alerts/{alert_id}/ack", response_model=schemas.AlertOut, tags=["alerts"])
async def ack_alert(
    alert_id: str,
    conn: Conn,
    caller: CurrentCaller,
    request: Request,
    background: BackgroundTasks,
    body: schemas.AlertAction | None = None,
) -> dict[str, Any]:
    return await _act(request, background, conn, caller, alert_id, "acked", body)


@router.post("/alerts/{alert_id}/resolve", response_model=schemas.AlertOut, tags=["alerts"])
async def resolve_alert(
    alert_id: str,
    conn: Conn,
    caller: CurrentCaller,
    request: Request,
    background: BackgroundTasks,
    body: schemas.AlertAction | None = None,
) -> dict[str, Any]:
    return await _act(request, background, conn, caller, alert_id, "resolved", body)


@router.post("/alerts/{alert_id}/note", response_model=schemas.AlertOut, tags=["alerts"])
async def note_alert(
    alert_id: str, body: AlertNote, conn: Conn, caller: CurrentCaller
) -> dict[str, Any]:
    """A note in the alert's history (and its chain) without a change of status; admins and
    regulators of its region, also on a resolved alert."""
    row = (await conn.execute(select(Alert).where(Alert.id == alert_id).with_for_update())).first()
    if row is None:
        raise unknown(caller, "alert", alert_id)
    if caller.role not in ("admin", "regulator") or not caller.sees_region(row.region_code):
        raise HTTPException(403, f"alert {alert_id!r} is outside your region or role")
    await alert_events.noted(conn, alert_id, body.note, caller.name)
    await audit.record(conn, caller, "alert.note", f"alert:{alert_id}", note=body.note)
    return (await _alert_out(conn, [row]))[0]


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
