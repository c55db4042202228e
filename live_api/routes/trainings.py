"""Offline trainings (CONTRACT §6.3): a place and a time window. Once it has ended, every
registered engineer whose own accepted fixes put them inside it for `min_minutes_present`
(default 80 % of its length) gets an `offline` continuing-education record with `ref` = the
training's id, exactly once: the stream worker credits them (store.trainings, rules.training)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from geoalchemy2.shape import to_shape
from pydantic import BaseModel
from shapely.geometry import mapping
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from live_api import audit
from live_api.ce_records import CeRecordOut, ce_out
from live_api.deps import Admin, Conn, CurrentCaller, in_region
from live_api.routes.projects import _str_id, parse_site
from live_api.routes.registry import SAFE_ID_RE
from store.models import CeRecord, Engineer, Training

router = APIRouter(prefix="/api")
MAX_LENGTH = dt.timedelta(days=31)


class TrainingOut(BaseModel):
    id: str
    name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    hours: float
    min_minutes_present: float
    settled_at: dt.datetime | None
    geometry: dict[str, Any]
    attendees: list[CeRecordOut] = []


def _time(props: dict[str, Any], name: str) -> dt.datetime:
    value = props.get(name)
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise HTTPException(
            422, f"properties.{name} must be an ISO-8601 time with its offset (e.g. +08:00)"
        )
    if (
        not dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
        <= parsed
        <= dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    ):
        raise HTTPException(422, f"properties.{name} is outside 1990..2100")
    return parsed


def _number(
    props: dict[str, Any], name: str, low: float, high: float, default: float | None = None
) -> float:
    value = props.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise HTTPException(422, f"properties.{name} must be a number {low:g}..{high:g}")
    return float(value)


def _out(row: Any, attendees: list[Any] | None = None) -> TrainingOut:
    return TrainingOut(
        id=row.id,
        name=row.name,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        hours=row.hours,
        min_minutes_present=row.min_minutes_present,
        settled_at=row.settled_at,
        geometry=mapping(to_shape(row.geom)),
        attendees=[ce_out(r) for r in attendees or []],
    )


@router.post("/trainings", response_model=TrainingOut, status_code=201, tags=["engineers"])
async def create_training(request: Request, conn: Conn, admin: Admin) -> TrainingOut:
    """Admin only. A GeoJSON Feature (Polygon/MultiPolygon, lon/lat) with `properties: {id,
    name, starts_at, ends_at, hours, min_minutes_present?}`; 409 for an existing id."""
    try:
        feature = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, f"body is not JSON: {exc}") from exc
    props, geom = parse_site(feature)
    training_id = _str_id(props.get("id"), "id")
    name = props.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        raise HTTPException(422, "properties.name must be a string of 1..200 characters")
    starts, ends = _time(props, "starts_at"), _time(props, "ends_at")
    if not starts < ends <= starts + MAX_LENGTH:
        raise HTTPException(422, "ends_at must be after starts_at, at most 31 days later")
    length_min = (ends - starts).total_seconds() / 60
    hours = _number(props, "hours", 0.5, 200)
    minimum = _number(
        props, "min_minutes_present", 1, length_min, default=round(0.8 * length_min, 2)
    )
    row = (
        await conn.execute(
            pg_insert(Training)
            .values(
                id=training_id,
                name=name,
                geom="SRID=4326;" + geom.wkt,
                starts_at=starts,
                ends_at=ends,
                hours=hours,
                min_minutes_present=minimum,
                actor=admin.name,
            )
            .on_conflict_do_nothing()
            .returning(Training)
        )
    ).first()
    if row is None:
        raise HTTPException(409, f"training {training_id!r} already exists")
    await audit.record(
        conn,
        admin,
        "training.create",
        f"training:{training_id}",
        name=name,
        starts_at=starts,
        ends_at=ends,
        hours=hours,
    )
    return _out(row)


@router.get("/trainings/{training_id}", response_model=TrainingOut, tags=["engineers"])
async def get_training(training_id: str, conn: Conn, caller: CurrentCaller) -> TrainingOut:
    """The training and the engineers credited so far (to an engineer: only themselves)."""
    if not SAFE_ID_RE.match(training_id):
        raise HTTPException(404, f"no training {training_id!r}")
    row = (await conn.execute(select(Training).where(Training.id == training_id))).first()
    if row is None:
        raise HTTPException(404, f"no training {training_id!r}")
    query = select(CeRecord).where(
        CeRecord.ref == training_id, CeRecord.actor == f"training:{training_id}"
    )
    if caller.role == "engineer":
        query = query.where(CeRecord.engineer_id == caller.engineer_id)
    elif caller.role == "regulator":  # the engineers registered in their region, as ce-records
        query = query.join(Engineer, Engineer.id == CeRecord.engineer_id).where(
            in_region(Engineer.registered_region, caller.region_code or "")
        )
    elif caller.role != "admin":
        query = query.where(CeRecord.engineer_id.is_(None))
    return _out(row, list(await conn.execute(query.order_by(CeRecord.engineer_id))))
