"""`POST /api/records` (CONTRACT §6.4): a practice record uploaded with its photos and PDFs.

multipart/form-data: a `record` part, the record's JSON (`{msg_id, engineer_id, project_id,
kind, ts, lat, lon, text, sig?}` as for `sitewatch/logs/{id}`), and up to 9 file parts, `photo`
(JPEG or PNG) or `document` (PDF). An engineer posts for themselves, an admin for anyone.
Every file is judged by its own bytes (attachments.checks) and kept under its SM3
(attachments.files); the record's chained JSON names them: as the sender listed them in
`files` (then an SM2 signature covers them), else in `attachments`, added here. A photo whose
EXIF time or position is far from the record's is flagged on it. The record then takes the
path of every message: the gate (identity, signature, replay) and Kafka; the worker chains it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select
from starlette.datastructures import UploadFile

from attachments import sandbox
from attachments.checks import BadFile, Checked, exif_flags
from attachments.files import FileStore
from categories import model as categories
from gm.algorithms import sm3_hex
from ingest.gate import Gate, Incoming
from ingest.http_routes import client_address, limit
from live_api.deps import CurrentCaller
from live_api.multipart import multipart_body
from rules import notices as notice_rules
from rules.notices import NOTICE_KINDS
from store.models import Project
from wire.codecs import MAX_FILE_BYTES, MAX_FILES, decode_record
from wire.fields import MAX_PAYLOAD, parse_json_object
from wire.records import Reason, Rejected, SupervisionLog

router = APIRouter(prefix="/api")
MAX_RECORD_JSON = 64 * 1024
PART_TYPES = {"photo": ("image/jpeg", "image/png"), "document": ("application/pdf",)}


class AttachmentOut(BaseModel):
    sm3: str
    size: int
    content_type: str


class RecordAccepted(BaseModel):
    id: str
    kind: str
    category: str  # categories.model: what the worker stores with the record too
    attachments: list[AttachmentOut]
    flags: list[str]


@router.post(
    "/records",
    status_code=201,
    response_model=RecordAccepted,
    tags=["records"],
    responses={429: {"description": "too many requests; retry after Retry-After"}},
    openapi_extra=multipart_body("record", ("photo", "document")),
)
async def upload_record(request: Request, caller: CurrentCaller) -> RecordAccepted:
    """A practice record with its files; 201 once it is in the stream (the worker chains it),
    with the files kept and what was flagged. 400 with the reason when refused."""
    limit(request, "ingest_address", client_address(request))
    if caller.role not in ("engineer", "admin"):
        raise HTTPException(403, "practice records are posted by engineers (or an admin)")
    limit(request, "ingest_identity", caller.engineer_id or caller.name)  # before any work
    form = await request.form(max_files=MAX_FILES, max_fields=1, max_part_size=MAX_RECORD_JSON)
    raw = form.get("record")
    # a part may declare a charset (utf-7...) that decodes to lone surrogates: keep them, so
    # that the JSON check refuses them as bad_encoding
    payload = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else b""
    try:
        record, parts = await _decoded(request, caller, payload, list(form.multi_items()))
    except Rejected as why:
        raise await _refused(request, payload, why) from None
    store = FileStore.of(request.app.state.settings.data_dir)
    for data in parts.values():
        await run_in_threadpool(store.put, data)
    gate: Gate = request.app.state.gate
    (verdict,) = await gate.admit([Incoming("http", "/api/records", payload, time.time(), record)])
    if verdict is not None:
        raise HTTPException(400, {"reason": verdict.reason, "message": verdict.message})
    category = await run_in_threadpool(categories.default().category, record.text)
    return RecordAccepted(
        id=f"{record.engineer_id}:{record.msg_id}",
        kind=record.kind,
        category=category,
        attachments=[
            AttachmentOut(sm3=a.sm3, size=a.bytes, content_type=a.type) for a in record.files
        ],
        flags=list(record.flags),
    )


async def _decoded(
    request: Request, caller: Any, payload: bytes, items: list[tuple[str, Any]]
) -> tuple[SupervisionLog, dict[str, bytes]]:
    """The record (naming its files, with its flags) and its files by SM3; raises `Rejected`."""
    if not payload:
        raise Rejected(Reason.MISSING_FIELD, "the form has no `record` part (the record's JSON)")
    obj = parse_json_object(payload)
    engineer_id = obj.get("engineer_id", caller.engineer_id)
    if not isinstance(engineer_id, str) or not engineer_id:
        raise Rejected(Reason.MISSING_FIELD, "engineer_id: whose record this is")
    if caller.role == "engineer" and engineer_id != caller.engineer_id:
        raise Rejected(Reason.TOPIC_MISMATCH, "an engineer posts their own records only")
    settings = request.app.state.settings
    parts: dict[str, bytes] = {}
    checked: dict[str, Checked] = {}
    for field, value in items:
        if not isinstance(value, UploadFile):
            continue
        name = f"{field} {(value.filename or '')[:60]!r}"
        allowed = PART_TYPES.get(field)
        if allowed is None:
            raise Rejected(Reason.BAD_FILE, f"{name}: a file part is a `photo` or a `document`")
        data = await value.read(MAX_FILE_BYTES + 1)
        try:
            facts = await run_in_threadpool(sandbox.judge, data, settings.timezone)
        except BadFile as why:
            raise Rejected(Reason.BAD_FILE, f"{name}: {why}") from None
        if facts.type not in allowed:
            raise Rejected(Reason.BAD_FILE, f"{name}: a {field} is {' or '.join(allowed)}")
        sm3 = sm3_hex(data)
        parts[sm3], checked[sm3] = data, facts
    if "files" not in obj and parts:  # name them for the chain (the sender signed the rest)
        obj["attachments"] = [
            {"sm3": sm3, "type": checked[sm3].type, "bytes": len(data)}
            for sm3, data in parts.items()
        ]
    record = decode_record(obj, engineer_id, now=time.time())
    if record.kind in NOTICE_KINDS:  # refused now, not skipped by the worker (rules.notices)
        try:
            notice_rules.fields_of(obj, record.ts, record.msg_id)
        except notice_rules.NotAllowed as why:
            raise Rejected(Reason.BAD_VALUE, str(why)) from None
    async with request.app.state.engine.connect() as conn:
        known = (
            await conn.execute(
                select(Project.id).where(
                    Project.id == record.project_id, Project.retired_at.is_(None)
                )
            )
        ).first()
    if known is None:  # an MQTT log may name any project; a record with files or a notice not
        raise Rejected(Reason.BAD_VALUE, f"no project {record.project_id[:64]!r} (ids are exact)")
    if len(record.canonical) > MAX_PAYLOAD:  # what the chain holds must decode again
        raise Rejected(
            Reason.TOO_LARGE, f"the record's JSON with its files is over {MAX_PAYLOAD} bytes"
        )
    _match(record, parts, checked)
    flags: list[str] = []
    for sm3, facts in checked.items():
        flags += exif_flags(
            facts,
            sm3,
            record.ts,
            (record.lon, record.lat),
            max_distance_m=settings.record_exif_max_distance_m,
            max_time_s=settings.record_exif_max_time_s,
        )
    return replace(record, flags=tuple(sorted(flags))), parts


def _match(record: SupervisionLog, parts: dict[str, bytes], checked: dict[str, Checked]) -> None:
    """The files the record names are the files uploaded, as they are."""
    named = {a.sm3: a for a in record.files}
    for sm3, data in parts.items():
        entry = named.get(sm3)
        if entry is None:
            raise Rejected(Reason.BAD_FILE, f"a file part (SM3 {sm3}) is not named in files")
        if (entry.type, entry.bytes) != (checked[sm3].type, len(data)):
            raise Rejected(
                Reason.BAD_FILE,
                f"file {sm3} is a {checked[sm3].type} of {len(data)} bytes, the record says "
                f"{entry.type} of {entry.bytes}",
            )
    missing = sorted(set(named) - set(parts))
    if missing:
        raise Rejected(Reason.BAD_FILE, f"files named but not uploaded: {', '.join(missing)}")


async def _refused(request: Request, payload: bytes, why: Rejected) -> HTTPException:
    """Logged as every refused message is (GET /api/rejected); the answer to raise."""
    gate: Gate = request.app.state.gate
    await gate.admit([Incoming("http", "/api/records", payload[:4096], time.time(), why)])
    return HTTPException(400, {"reason": why.reason, "message": why.message})
