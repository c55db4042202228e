"""Bearer tokens: create, list, revoke (CONTRACT section 2, §6.2).
Scoping: live_api.routes.registry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, insert, select, update

from live_api import audit
from live_api import identity_schemas as schemas
from live_api.auth import hash_token, new_token
from live_api.deps import (
    Admin,
    Conn,
)
from store.models import (
    Device,
    Engineer,
    Token,
)

router = APIRouter(prefix="/api")


@router.post("/tokens", status_code=201, response_model=schemas.TokenOut, tags=["auth"])
async def create_token(body: schemas.TokenCreate, conn: Conn, admin: Admin) -> schemas.TokenOut:
    """Admin only. The token is shown once; only its SHA-256 is stored."""
    await check_scope(conn, body.role, body.region_code, body.engineer_id, body.device_ids)
    token = new_token()
    expires_at = (
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=body.expires_in_s)
        if body.expires_in_s
        else None
    )
    result = await conn.execute(
        insert(Token)
        .values(
            token_hash=hash_token(token),
            role=body.role,
            region_code=body.region_code if body.role == "regulator" else None,
            engineer_id=body.engineer_id if body.role == "engineer" else None,
            device_ids=sorted(set(body.device_ids or [])) if body.role == "vendor" else [],
            expires_at=expires_at,
        )
        .returning(Token.id)
    )
    token_id = result.scalar_one()
    await audit.record(
        conn,
        admin,
        "token.create",
        f"token:{token_id}",
        **body.model_dump(exclude={"expires_in_s"}),
        expires_at=expires_at,
    )
    return schemas.TokenOut(token=token, role=body.role, id=token_id, expires_at=expires_at)


async def check_scope(
    conn: Any,
    role: str,
    region_code: str | None,
    engineer_id: str | None,
    device_ids: list[str] | None,
) -> None:
    """422 unless a token or account of `role` has its scope, naming what exists: a token for
    an identity registered later would grant it rights nobody reviewed."""
    if role == "regulator" and not region_code:
        raise HTTPException(422, "a regulator token needs region_code (the region it may see)")
    if role == "engineer" and not engineer_id:
        raise HTTPException(422, "an engineer token needs engineer_id")
    if role == "vendor" and not device_ids:
        raise HTTPException(422, "a vendor token needs device_ids")
    if (
        role == "engineer"
        and (await conn.execute(select(Engineer.id).where(Engineer.id == engineer_id))).first()
        is None
    ):
        raise HTTPException(422, f"no engineer {engineer_id!r}: register the engineer first")
    if role == "vendor":
        wanted = set(device_ids or [])
        found = set((await conn.execute(select(Device.id).where(Device.id.in_(wanted)))).scalars())
        if wanted - found:
            raise HTTPException(
                422, f"no device {sorted(wanted - found)[0]!r}: register the devices first"
            )


@router.get("/tokens", response_model=list[schemas.TokenInfo], tags=["auth"])
async def list_tokens(conn: Conn, _admin: Admin) -> list[schemas.TokenInfo]:
    """Admin only. Every token with its scope, expiry and revocation (never the token)."""
    rows = (await conn.execute(select(Token).order_by(Token.id))).all()
    return [_token_info(t) for t in rows]


@router.post("/tokens/{token_id}/revoke", response_model=schemas.TokenInfo, tags=["auth"])
async def revoke_token(token_id: int, conn: Conn, admin: Admin) -> schemas.TokenInfo:
    """Admin only. The token gets 401 from its next call on; its open WebSockets are closed
    within `SITEWATCH_WS_TOKEN_RECHECK_S` (30 s)."""
    row = (
        await conn.execute(
            update(Token)
            .where(Token.id == token_id)
            .values(revoked_at=func.coalesce(Token.revoked_at, func.now()))
            .returning(Token)
        )
    ).first()
    if row is None:
        raise HTTPException(404, f"no token {token_id}")
    await audit.record(conn, admin, "token.revoke", f"token:{token_id}", account=row.account)
    return _token_info(row)


def _token_info(t: Any) -> schemas.TokenInfo:
    return schemas.TokenInfo(
        id=t.id,
        role=t.role,
        region_code=t.region_code,
        engineer_id=t.engineer_id,
        device_ids=list(t.device_ids or []),
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked_at=t.revoked_at,
        account=t.account,
    )
