"""Reading practice records (CONTRACT §6.4): `GET /api/records`, scoped like the facts (an
admin all, a regulator its region's projects, an engineer their own), and
`GET /api/attachments/{sm3}`, a file to whoever may read a record or notice step naming it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import text

from attachments.files import FileStore
from geofence.codes import code_prefix
from live_api.deps import Conn, CurrentCaller
from live_api.history_formats import download
from live_api.routes.records import AttachmentOut
from wire.codecs import RECORD_KINDS

router = APIRouter(prefix="/api")
SM3_PATTERN = "^[0-9a-f]{64}$"

RECORDS_SQL = """
SELECT l.engineer_id, l.msg_id, l.project_id, l.kind, l.category, l.ts, ST_X(l.geom) AS lon,
       ST_Y(l.geom) AS lat, l.text, l.files, l.flags, p.region_code
FROM supervision_logs l LEFT JOIN projects p ON p.id = l.project_id
WHERE {where}
ORDER BY l.ts, l.engineer_id, l.msg_id LIMIT 10000
"""
NAMING_SQL = text(
    """
    SELECT l.engineer_id, p.region_code, f->>'type' AS type
    FROM supervision_logs l LEFT JOIN projects p ON p.id = l.project_id,
         jsonb_array_elements(l.files) f
    WHERE l.files @> CAST(:probe AS jsonb) AND f->>'sm3' = :sm3
    UNION ALL
    SELECT n.engineer_id, n.region_code, f->>'type'
    FROM notice_events e JOIN notices n ON n.id = e.notice_id,
         jsonb_array_elements(coalesce(e.details->'photos', '[]'::jsonb)) f
    WHERE e.details->'photos' @> CAST(:probe AS jsonb) AND f->>'sm3' = :sm3
    """
)


class RecordOut(BaseModel):
    id: str
    engineer_id: str
    project_id: str
    kind: str
    category: str | None
    ts: dt.datetime
    lon: float
    lat: float
    text: str
    attachments: list[AttachmentOut]
    flags: list[str]


@router.get("/records", response_model=list[RecordOut], tags=["records"])
async def list_records(
    conn: Conn,
    caller: CurrentCaller,
    project_id: str | None = None,
    engineer_id: str | None = None,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(RECORD_KINDS) + ")$")] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
    to: dt.datetime | None = None,
) -> list[RecordOut]:
    """Practice records, oldest first (at most 10,000); `category` as the text classifier
    gave it (categories.model)."""
    clauses, params = ["true"], {}
    if caller.role == "regulator":
        clauses.append("starts_with(p.region_code, :prefix)")
        params["prefix"] = code_prefix(caller.region_code or "") or "-"  # '000000': nothing
    elif caller.role != "admin":
        clauses.append("l.engineer_id = :me")
        params["me"] = caller.engineer_id or ""
    for name, value, sql in (
        ("project_id", project_id, "l.project_id = :project_id"),
        ("engineer_id", engineer_id, "l.engineer_id = :engineer_id"),
        ("kind", kind, "l.kind = :kind"),
        ("from", from_, "l.ts >= :from"),
        ("to", to, "l.ts < :to"),
    ):
        if value is not None:
            clauses.append(sql)
            params[name] = value
    if category is not None:
        clauses.append("l.category = :category")
        params["category"] = category
    rows = await conn.execute(text(RECORDS_SQL.format(where=" AND ".join(clauses))), params)
    return [
        RecordOut(
            id=f"{r.engineer_id}:{r.msg_id}",
            engineer_id=r.engineer_id,
            project_id=r.project_id,
            kind=r.kind,
            category=r.category,
            ts=r.ts,
            lon=r.lon,
            lat=r.lat,
            text=r.text,
            attachments=[
                AttachmentOut(sm3=f["sm3"], size=f["bytes"], content_type=f["type"])
                for f in r.files
            ],
            flags=list(r.flags),
        )
        for r in rows
    ]


@router.get(
    "/attachments/{sm3}",
    tags=["records"],
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "application/pdf": {}}}},
)
async def get_attachment(
    sm3: Annotated[str, Path(pattern=SM3_PATTERN)],
    request: Request,
    conn: Conn,
    caller: CurrentCaller,
) -> Response:
    """The file, to whoever may read a record (or a notice's reply) that names it; 404 for
    anyone else, as for a file nobody names."""
    probe = f'[{{"sm3": "{sm3}"}}]'
    naming: list[Any] = list(await conn.execute(NAMING_SQL, {"probe": probe, "sm3": sm3}))
    if not naming:
        raise HTTPException(404, f"no record you may read names a file {sm3}")
    readable = [
        r for r in naming if caller.sees(region_code=r.region_code, engineer_id=r.engineer_id)
    ]
    if not readable:  # the same answer as for no file: whether one exists is not told
        raise HTTPException(404, f"no record you may read names a file {sm3}")
    store = FileStore.of(request.app.state.settings.data_dir)
    data = await run_in_threadpool(store.read, sm3)
    if data is None:
        raise HTTPException(404, f"file {sm3} is named but no longer stored")
    return download(data, readable[0].type, sm3)
