"""Rectification notices and stop-work orders (CONTRACT §6.4): issued as practice records
(`POST /api/records` with `kind: notice` or `stop_work`, a `deadline` and optionally
`severity` and `responsible`), then rectified (a reply with photos), closed by the issuing
engineer (or an admin), or reopened. Every step is a link of the notice's own chain
(rules.notices, store.notices) and a live `notice` message; `notice_overdue` is the worker's."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson
from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.datastructures import UploadFile

from attachments import sandbox
from attachments.checks import BadFile
from attachments.files import FileStore
from config import topics
from gm.algorithms import sm3_hex
from ingest.http_routes import limit
from live_api.auth import Caller
from live_api.deps import Conn, CurrentCaller, in_region
from live_api.multipart import multipart_body
from rules import notices as rules
from store import notices as store
from store.models import Notice
from wire.codecs import MAX_FILES
from wire.fields import parse_json_object
from wire.records import Rejected

router = APIRouter(prefix="/api")
log = logging.getLogger("sitewatch.notices")


class NoticeEventOut(BaseModel):
    seq: int
    event: str
    details: dict[str, Any]
    hash: str


class NoticeOut(BaseModel):
    id: str
    kind: str
    engineer_id: str = Field(description="who issued it")
    project_id: str
    region_code: str
    text: str
    severity: str | None
    deadline: dt.datetime
    responsible: str | None
    status: str = Field(description="open, rectified or closed")
    issued_at: dt.datetime
    settled_at: dt.datetime | None = Field(description="first rectified or closed")
    events: list[NoticeEventOut] = []


class NoteIn(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


def _out(row: Any, events: list[Any] | None = None) -> NoticeOut:
    return NoticeOut(
        id=row.id,
        kind=row.kind,
        engineer_id=row.engineer_id,
        project_id=row.project_id,
        region_code=row.region_code,
        text=row.text,
        severity=row.severity,
        deadline=row.deadline,
        responsible=row.responsible,
        status=row.status,
        issued_at=row.issued_at,
        settled_at=row.settled_at,
        events=[
            NoticeEventOut(seq=e.seq, event=e.event, details=e.details, hash=e.hash)
            for e in events or []
        ],
    )


def _may_see(caller: Caller, row: Any) -> bool:
    return caller.sees(region_code=row.region_code, engineer_id=row.engineer_id)


async def _visible(conn: Any, caller: Caller, notice_id: str, *, lock: bool = False) -> Any:
    query = select(Notice).where(Notice.id == notice_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None or not _may_see(caller, row):  # whether it exists is not told either
        raise HTTPException(404, f"no notice {notice_id!r} you may see")
    return row


@router.get("/notices", response_model=list[NoticeOut], tags=["records"])
async def list_notices(
    conn: Conn,
    caller: CurrentCaller,
    project_id: str | None = None,
    status: str | None = Query(default=None, pattern="^(open|rectified|closed)$"),
    engineer_id: str | None = Query(default=None, max_length=64, description="who issued it"),
) -> list[NoticeOut]:
    """The notices the caller may see (a regulator's region, an engineer's own), oldest first."""
    query = select(Notice).order_by(Notice.issued_at, Notice.id).limit(10_000)
    if caller.role == "regulator":
        query = query.where(in_region(Notice.region_code, caller.region_code or ""))
    elif caller.role != "admin":
        query = query.where(Notice.engineer_id == (caller.engineer_id or ""))
    if project_id is not None:
        query = query.where(Notice.project_id == project_id)
    if status is not None:
        query = query.where(Notice.status == status)
    if engineer_id is not None:
        query = query.where(Notice.engineer_id == engineer_id)
    return [_out(r) for r in await conn.execute(query)]


@router.get("/notices/{notice_id}", response_model=NoticeOut, tags=["records"])
async def get_notice(notice_id: str, conn: Conn, caller: CurrentCaller) -> NoticeOut:
    """The notice with every step of its chain."""
    row = await _visible(conn, caller, notice_id)
    return _out(row, await store.events(conn, notice_id))


@router.post(
    "/notices/{notice_id}/rectify",
    response_model=NoticeOut,
    tags=["records"],
    openapi_extra=multipart_body("reply", ("photo",)),
)
async def rectify_notice(
    notice_id: str,
    request: Request,
    caller: CurrentCaller,
    background: BackgroundTasks,
) -> NoticeOut:
    """multipart/form-data: `reply` = JSON `{text}` and up to 9 `photo` parts (JPEG/PNG),
    each kept under its SM3, which the chain's `rectified` link names. The photos are judged
    with no database connection held and the notice not locked (attachments.sandbox); the
    step itself is one short transaction."""
    if caller.role not in ("engineer", "admin"):
        raise HTTPException(403, "a notice is rectified by an engineer (or an admin)")
    limit(request, "ingest_identity", caller.engineer_id or caller.name)
    engine = request.app.state.engine
    async with engine.connect() as conn:
        _allowed(await _visible(conn, caller, notice_id), "rectify")
    form = await request.form(max_files=MAX_FILES, max_fields=1, max_part_size=64 * 1024)
    raw = form.get("reply")
    try:
        reply = parse_json_object(
            raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else b""
        )
    except Rejected as why:
        raise HTTPException(
            400, {"reason": why.reason, "message": f"reply: {why.message}"}
        ) from None
    text = reply.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 20_000:
        raise HTTPException(
            400, {"reason": "bad_value", "message": "reply.text: 1..20000 characters"}
        )
    settings = request.app.state.settings
    uploads = [(f, v) for f, v in form.multi_items() if isinstance(v, UploadFile)]
    if any(field != "photo" for field, _ in uploads):  # before any is read or judged
        raise HTTPException(400, {"reason": "bad_file", "message": "a reply has `photo` parts"})
    photos, kept = [], []
    for field, value in uploads:
        data = await value.read(20 * 1024 * 1024 + 1)
        try:
            checked = await run_in_threadpool(sandbox.judge, data, settings.timezone)
        except BadFile as why:
            raise HTTPException(400, {"reason": "bad_file", "message": f"{field}: {why}"}) from None
        if not checked.type.startswith("image/"):
            raise HTTPException(400, {"reason": "bad_file", "message": f"{field}: not a photo"})
        photos.append({"sm3": sm3_hex(data), "type": checked.type, "bytes": len(data)})
        kept.append(data)
    files = FileStore.of(settings.data_dir)
    for data in kept:
        await run_in_threadpool(files.put, data)
    async with engine.begin() as conn:
        row = await _visible(conn, caller, notice_id, lock=True)
        return await _step(
            request, background, conn, caller, row, "rectify", text=text, photos=photos
        )


def _allowed(row: Any, action: str) -> None:
    try:
        rules.next_status(row.status, action)
    except rules.NotAllowed as why:
        raise HTTPException(409, str(why)) from None


@router.post("/notices/{notice_id}/close", response_model=NoticeOut, tags=["records"])
async def close_notice(
    notice_id: str,
    request: Request,
    conn: Conn,
    caller: CurrentCaller,
    background: BackgroundTasks,
    body: NoteIn | None = None,
) -> NoticeOut:
    """Only the engineer who issued it, or an admin."""
    row = await _issuer_only(conn, caller, notice_id)
    note = body.note if body else None
    return await _step(request, background, conn, caller, row, "close", note=note)


@router.post("/notices/{notice_id}/reopen", response_model=NoticeOut, tags=["records"])
async def reopen_notice(
    notice_id: str,
    request: Request,
    conn: Conn,
    caller: CurrentCaller,
    background: BackgroundTasks,
    body: NoteIn | None = None,
) -> NoticeOut:
    """Only the engineer who issued it, or an admin."""
    row = await _issuer_only(conn, caller, notice_id)
    note = body.note if body else None
    return await _step(request, background, conn, caller, row, "reopen", note=note)


async def _issuer_only(conn: Any, caller: Caller, notice_id: str) -> Any:
    row = await _visible(conn, caller, notice_id, lock=True)
    if caller.role != "admin" and not (
        caller.role == "engineer" and caller.engineer_id == row.engineer_id
    ):
        raise HTTPException(403, "only the engineer who issued the notice, or an admin")
    return row


async def _step(
    request: Request,
    background: BackgroundTasks,
    conn: Any,
    caller: Caller,
    row: Any,
    action: str,
    **details: Any,
) -> NoticeOut:
    try:
        after = await store.apply(conn, row.id, action, caller.name, **details)
    except rules.NotAllowed as why:
        raise HTTPException(409, str(why)) from None
    background.add_task(push_live, request, after)  # after the response: after the commit
    return _out(after, await store.events(conn, row.id))


async def push_live(request: Request, notice: Any) -> None:
    """The live `notice` message (CONTRACT §6.6), after the commit; best effort (REST has the
    truth), so a Kafka outage is logged, not raised."""
    gate = getattr(request.app.state, "gate", None)
    if gate is None:
        return
    message = rules.live_message(dict(notice._mapping))
    try:
        await gate.producer.send_and_wait(topics.LIVE, key=b"live", value=orjson.dumps([message]))
    except Exception as exc:  # noqa: BLE001 - Kafka down: the live update is best effort
        log.warning("notice %s changed but could not be pushed live: %r", notice.id, exc)
