"""HTTP ingest: Traccar OsmAnd (`/osmand`) and OwnTracks HTTP mode (`/owntracks`).

As in Traccar, OsmAnd requests carry no secret: the id must be a registered engineer. A
request is answered 200 only once Kafka holds the record; a rejection is answered 400 with its
reason (and kept in the rejected log like every other).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from ingest.codecs import decode_osmand, decode_owntracks_http
from ingest.gate import Gate, Incoming
from ingest.records import Reason, Record, Rejected

router = APIRouter(tags=["ingest"])

MAX_BODY = 64 * 1024


async def _admit(request: Request, path: str, payload: bytes, decoded: Record | Rejected) -> Any:
    gate: Gate = request.app.state.gate
    (verdict,) = await gate.admit([Incoming("http", path, payload, time.time(), decoded)])
    if verdict is not None:
        raise HTTPException(400, {"reason": verdict.reason, "message": verdict.message})
    return decoded


async def _body(request: Request, path: str) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        why = Rejected(Reason.TOO_LARGE, f"body larger than {MAX_BODY} bytes")
        gate: Gate = request.app.state.gate
        excerpt = str(request.url.query).encode()
        await gate.admit([Incoming("http", path, excerpt, time.time(), why)])
        raise HTTPException(413, {"reason": why.reason, "message": why.message})
    return body


async def osmand(request: Request) -> JSONResponse:
    """Traccar OsmAnd: query string, form body or the JSON body of Traccar Client 9."""
    body = await _body(request, "/osmand") if request.method == "POST" else b""
    params = dict(request.query_params)
    try:
        decoded: Record | Rejected = decode_osmand(
            params, body or None, request.headers.get("content-type"), now=time.time()
        )
    except Rejected as why:
        decoded = why
    payload = (
        (str(request.url.query).encode() + b"\n" + body)
        if body
        else str(request.url.query).encode()
    )
    await _admit(request, "/osmand", payload, decoded)
    return JSONResponse({"status": "ok"})


# One handler, two operations: each method needs its own OpenAPI operation id.
router.add_api_route("/osmand", osmand, methods=["GET"], operation_id="osmand_get")
router.add_api_route("/osmand", osmand, methods=["POST"], operation_id="osmand_post")


@router.post("/owntracks")
async def owntracks(request: Request) -> JSONResponse:
    """OwnTracks HTTP mode: user from X-Limit-U or ?u=, device from X-Limit-D or ?d=.
    Answers `[]` (no friends' locations) as the app expects."""
    body = await _body(request, "/owntracks")
    user = request.headers.get("x-limit-u") or request.query_params.get("u")
    device = request.headers.get("x-limit-d") or request.query_params.get("d")
    try:
        if not user:
            raise Rejected(
                Reason.MISSING_FIELD, "OwnTracks HTTP needs the user in the X-Limit-U header or ?u="
            )
        decoded: Record | Rejected = decode_owntracks_http(user, device, body, now=time.time())
    except Rejected as why:
        decoded = why
    if isinstance(decoded, Rejected) and decoded.reason == "ignored_type":
        await _admit_quietly(request, body, decoded)
        return JSONResponse([])
    await _admit(request, "/owntracks", body, decoded)
    return JSONResponse([])


async def _admit_quietly(request: Request, body: bytes, decoded: Rejected) -> None:
    gate: Gate = request.app.state.gate
    await gate.admit([Incoming("http", "/owntracks", body, time.time(), decoded)])
