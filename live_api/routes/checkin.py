"""Check-in from the browser: the engineer's console page posts what a phone publishes on
`sitewatch/checkin/{id}`, with the engineer's bearer token instead of its MQTT password. The
same decoding, gate and rejection log as every other ingest path (CONTRACT section 3)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from ingest.http_routes import admit, client_address, limit, read_body
from live_api.deps import CurrentCaller
from wire.codecs import decode_mqtt
from wire.records import Fix, Record, Rejected

router = APIRouter(prefix="/api")

CHECKIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["msg_id", "engineer_id", "ts", "lat", "lon"],
                    "properties": {
                        "msg_id": {"type": "string"},
                        "engineer_id": {"type": "string"},
                        "ts": {"type": "number"},
                        "lat": {"type": "number"},
                        "lon": {"type": "number"},
                        "acc": {"type": "number"},
                        "kind": {"enum": ["position", "checkin", "checkout"]},
                        "sig": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/checkin",
    tags=["ingest"],
    openapi_extra=CHECKIN_BODY,
    responses={400: {"description": "rejected, with its reason"}},
)
async def checkin(request: Request, caller: CurrentCaller) -> JSONResponse:
    """An engineer's position, check-in or check-out, as on `sitewatch/checkin/{id}`: the
    same JSON, `engineer_id` (the caller's) included, and signed (`sig`) when the engineer has
    a public key. Answered once Kafka holds it."""
    if caller.role != "engineer" or not caller.engineer_id:
        raise HTTPException(403, "only an engineer checks in")
    limit(request, "ingest_address", client_address(request))
    limit(request, "ingest_identity", caller.engineer_id)
    body = await read_body(request, "/api/checkin")
    try:
        decoded: Record | Rejected = decode_mqtt(
            f"sitewatch/checkin/{caller.engineer_id}", body, now=time.time()
        )
    except Rejected as why:
        decoded = why
    await admit(request, "/api/checkin", body, decoded)
    kind = decoded.kind if isinstance(decoded, Fix) else None
    return JSONResponse({"status": "ok", "kind": kind})
