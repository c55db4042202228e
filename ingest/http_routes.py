"""HTTP ingest: Traccar OsmAnd (`/osmand`) and OwnTracks HTTP mode (`/owntracks`).

OsmAnd requests carry no other secret than their id, as in Traccar: since v1.1 the id is the
phone's secret OsmAnd id, not the engineer id. OwnTracks HTTP needs Basic auth. A request is
answered 200 only once Kafka holds the record; a rejection is answered 400 with its
reason (and kept in the rejected log like every other). More requests than
`SITEWATCH_INGEST_RATE_PER_ADDRESS` from one address, or `..._PER_IDENTITY` for one engineer,
are answered 429 with Retry-After (phones send them again later) and not kept.
"""

from __future__ import annotations

import base64
import ipaddress
import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from devices.credentials import HttpCredentials
from ingest.gate import Gate, Incoming
from ingest.rate_limits import RateLimits
from wire.codecs import decode_osmand, decode_owntracks_http
from wire.records import Fix, Reason, Record, Rejected

router = APIRouter(tags=["ingest"])

MAX_BODY = 64 * 1024


async def admit(request: Request, path: str, payload: bytes, decoded: Record | Rejected) -> Any:
    gate: Gate = request.app.state.gate
    (verdict,) = await gate.admit([Incoming("http", path, payload, time.time(), decoded)])
    if verdict is not None:
        raise HTTPException(400, {"reason": verdict.reason, "message": verdict.message})
    return decoded


def client_address(request: Request) -> str:
    """The source address a limit counts: the IPv4 address, or the /64 of an IPv6 one (a
    single host commonly holds a whole /64 and could otherwise rotate through it)."""
    host = request.client.host if request.client else "unknown"
    if ":" in host:
        try:
            return str(ipaddress.ip_network(f"{host}/64", strict=False))
        except ValueError:
            return host
    return host


def limit(request: Request, name: str, key: str) -> None:
    """429 with Retry-After once `key` has used up the limit `name` (ingest.rate_limits)."""
    limits: RateLimits = request.app.state.rate_limits
    refused = limits.take(name, key)
    if refused is not None:
        raise HTTPException(
            429,
            {"reason": "rate_limited", "message": refused.message},
            headers={"Retry-After": str(refused.retry_after_s)},
        )


async def read_body(request: Request, path: str) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        why = Rejected(Reason.TOO_LARGE, f"body larger than {MAX_BODY} bytes")
        gate: Gate = request.app.state.gate
        excerpt = str(request.url.query).encode()
        await gate.admit([Incoming("http", path, excerpt, time.time(), why)])
        raise HTTPException(413, {"reason": why.reason, "message": why.message})
    return body


async def osmand(request: Request) -> JSONResponse:
    """Traccar OsmAnd: query string, form body or the JSON body of Traccar Client 9. The `id`
    is the phone's secret OsmAnd id (`POST /api/engineers/{id}/phones`); the engineer's own id
    only where `SITEWATCH_OSMAND_ENGINEER_IDS=true` (v1 clients, for migration)."""
    limit(request, "ingest_address", client_address(request))
    body = await read_body(request, "/osmand") if request.method == "POST" else b""
    params = dict(request.query_params)
    try:
        decoded: Record | Rejected = await _as_engineer(
            request,
            decode_osmand(
                params, body or None, request.headers.get("content-type"), now=time.time()
            ),
        )
    except Rejected as why:
        decoded = why
    if isinstance(decoded, Fix):
        limit(request, "ingest_identity", decoded.engineer_id)
    payload = (
        (str(request.url.query).encode() + b"\n" + body)
        if body
        else str(request.url.query).encode()
    )
    await admit(request, "/osmand", payload, decoded)
    return JSONResponse({"status": "ok"})


async def _as_engineer(request: Request, fix: Fix) -> Fix:
    """The fix of the engineer whose phone sent it. An unknown phone id and an engineer id
    (without the migration setting) get the same answer: nothing tells which ids exist."""
    credentials: HttpCredentials = request.app.state.http_credentials
    engineer = await credentials.engineer_of_phone(fix.engineer_id)
    if engineer is None:
        if request.app.state.settings.osmand_engineer_ids:
            return fix  # v1: the id is the engineer's; the gate checks it is registered
        raise Rejected(
            Reason.UNKNOWN_IDENTITY,
            "unknown OsmAnd id: use the phone id issued at registration "
            "(POST /api/engineers/{id}/phones)",
        )
    millis = fix.msg_id.rsplit(":", 1)[1]
    return replace(fix, engineer_id=engineer, msg_id=f"osmand:{engineer}:{millis}")


# One handler, two operations: each method needs its own OpenAPI operation id.
router.add_api_route("/osmand", osmand, methods=["GET"], operation_id="osmand_get")
router.add_api_route("/osmand", osmand, methods=["POST"], operation_id="osmand_post")


@router.post("/owntracks")
async def owntracks(request: Request) -> JSONResponse:
    """OwnTracks HTTP mode: HTTP Basic auth with the engineer id and its MQTT password (as the
    app sends them); the user of X-Limit-U or ?u=, when given, must be the same; device from
    X-Limit-D or ?d=. Answers `[]` (no friends' locations) as the app expects."""
    limit(request, "ingest_address", client_address(request))
    body = await read_body(request, "/owntracks")
    user = await basic_user(request)
    if user is None:
        why = Rejected(
            Reason.UNAUTHENTICATED,
            "OwnTracks HTTP needs Basic auth: the engineer id and its MQTT password",
        )
        await _admit_quietly(request, body, why)
        raise HTTPException(
            401,
            {"reason": why.reason, "message": why.message},
            headers={"WWW-Authenticate": 'Basic realm="SiteWatch"'},
        )
    limit(request, "ingest_identity", user)
    device = request.headers.get("x-limit-d") or request.query_params.get("d")
    named = request.headers.get("x-limit-u") or request.query_params.get("u")
    try:
        if named is not None and named != user:
            raise Rejected(
                Reason.TOPIC_MISMATCH, "the user of X-Limit-U / ?u= differs from the signed-in one"
            )
        decoded: Record | Rejected = decode_owntracks_http(user, device, body, now=time.time())
    except Rejected as why:
        decoded = why
    if isinstance(decoded, Rejected) and decoded.reason == "ignored_type":
        await _admit_quietly(request, body, decoded)
        return JSONResponse([])
    await admit(request, "/owntracks", body, decoded)
    return JSONResponse([])


async def basic_user(request: Request) -> str | None:
    """The engineer id of valid Basic credentials, else None (whatever was wrong)."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 400:
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    if not sep or not user or not password or len(user) > 64:
        return None
    credentials: HttpCredentials = request.app.state.http_credentials
    return user if await credentials.password_ok(user, password) else None


async def _admit_quietly(request: Request, body: bytes, decoded: Rejected) -> None:
    gate: Gate = request.app.state.gate
    await gate.admit([Incoming("http", "/owntracks", body, time.time(), decoded)])
