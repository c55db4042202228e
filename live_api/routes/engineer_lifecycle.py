"""Changing and retiring engineers (CONTRACT §6.3): `PATCH` with `If-Match`, `DELETE` that
keeps history, and each engineer's changes with their actor. Scoping: live_api.routes.registry.

A change reaches the stream rules without a restart: the worker's registry cache
(store.engineer_facts) starts over when a `registry` row is added to `change_log`, and the
ingest directory (devices.directory) reads an identity again within 30 s."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import insert, update

from gm.algorithms import normalize_public_key, sm4_decrypt, sm4_encrypt
from live_api import audit, schemas
from live_api.ce_records import declare_hours
from live_api.deps import Admin, Conn, CurrentCaller, SettingsDep
from live_api.routes.engineers import _last4, engineer_etag, engineer_out, visible_engineer
from live_api.routes.registry import (
    _personal_key,
    change_history,
    check_if_match,
    diff,
    registry_changed,
    retire,
)
from store.models import CertStatusChange, Engineer

router = APIRouter(prefix="/api")
PLAIN_FIELDS = ("name", "registered_region", "cert_status", "cert_number", "cert_valid_to")
PERSONAL_FIELDS = ("phone", "id_number")


@router.patch("/engineers/{engineer_id}", response_model=schemas.EngineerOut, tags=["engineers"])
async def patch_engineer(
    engineer_id: str,
    body: schemas.EngineerPatch,
    request: Request,
    response: Response,
    conn: Conn,
    admin: Admin,
    settings: SettingsDep,
) -> schemas.EngineerOut:
    """Admin only. Any of the fields; with `If-Match` (the ETag of a `GET`), 412 when the
    engineer changed since. A new `cert_status` applies from `cert_status_from` (default:
    today; not after today) and is kept in the certificate's history."""
    row = await visible_engineer(conn, admin, engineer_id, for_update=True)
    before = engineer_out(row)
    check_if_match(request, "engineer", engineer_id, engineer_etag(row))
    given = body.model_dump(exclude_unset=True)
    today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    if body.cert_status_from is not None and body.cert_status_from > today:
        # the registry's `cert_status` is the status today: record a later one on its day
        raise HTTPException(
            422, "cert_status_from is after today: record a future change on its day"
        )
    values: dict[str, Any] = {k: given[k] for k in (*PLAIN_FIELDS, "ce_hours") if k in given}
    if "employer" in given:
        employer = body.employer
        values["employer_name"] = employer.name if employer else None
        values["employer_credit_code"] = employer.credit_code if employer else None
    key = _personal_key(request)
    personal_changed = []
    for name in PERSONAL_FIELDS:
        if name in given:
            value = given[name]
            old = getattr(row, f"{name}_enc")
            if (sm4_decrypt(key, old) if old else None) != value:
                personal_changed.append(name)
            values[f"{name}_enc"] = sm4_encrypt(key, value) if value else None
            values[f"{name}_last4"] = _last4(value)
    if "sm2_public_key" in given:
        values["sm2_public_key"] = _public_key(body.sm2_public_key)
    status_changed = (
        "cert_status" in given and given["cert_status"] != row.cert_status
    ) or "cert_status_from" in given
    if status_changed:
        values["cert_status_from"] = body.cert_status_from or today
    if values:
        row = (
            await conn.execute(
                update(Engineer)
                .where(Engineer.id == engineer_id)
                .values(**values)
                .returning(Engineer)
            )
        ).one()
    after = engineer_out(row)
    if status_changed:
        await conn.execute(
            insert(CertStatusChange).values(
                engineer_id=engineer_id, status=row.cert_status, from_date=row.cert_status_from
            )
        )
    if "ce_hours" in given:
        await declare_hours(conn, admin, engineer_id, float(given["ce_hours"]), today.year)
    changes = diff(before.model_dump(mode="json"), after.model_dump(mode="json"))
    for name in personal_changed:  # changed where the mask does not show it: said anyway
        changes.setdefault(name, [getattr(before, name), getattr(after, name)])
    if changes:
        await registry_changed(conn)
        await audit.record(
            conn, admin, "engineer.update", f"engineer:{engineer_id}", changes=changes
        )
    response.headers["ETag"] = engineer_etag(row)
    return after


def _public_key(value: str | None) -> str | None:
    if not value:
        return None
    point = normalize_public_key(value)
    if point is None:
        raise HTTPException(
            422, "sm2_public_key must be the hex of the 64-byte x||y point (optionally 04-prefixed)"
        )
    return point.hex()


@router.delete("/engineers/{engineer_id}", status_code=204, tags=["engineers"])
async def retire_engineer(engineer_id: str, request: Request, conn: Conn, admin: Admin) -> Response:
    """Admin only. Retired, kept for history: its record, chain and alerts stay readable; its
    new messages are rejected with reason `retired`. Retiring again changes nothing."""
    row = await visible_engineer(conn, admin, engineer_id, for_update=True)
    check_if_match(request, "engineer", engineer_id, engineer_etag(row))
    if await retire(conn, Engineer, engineer_id):
        await registry_changed(conn)
        await audit.record(conn, admin, "engineer.retire", f"engineer:{engineer_id}")
    return Response(status_code=204)


@router.get(
    "/engineers/{engineer_id}/changes", response_model=list[schemas.Change], tags=["engineers"]
)
async def engineer_changes(
    engineer_id: str, conn: Conn, caller: CurrentCaller
) -> list[schemas.Change]:
    """Who changed what and when, oldest first (personal fields masked), to whoever may read
    the engineer."""
    await visible_engineer(conn, caller, engineer_id)
    return await change_history(conn, "engineer", engineer_id)
