"""Accounts for people, sign-in, and the audit log (CONTRACT §6.2).

A login's token is an ordinary bearer token (`tokens.account` names who signed in) that
expires after `SITEWATCH_LOGIN_TOKEN_TTL_S`. Login attempts are limited per address and failed
ones per username (`SITEWATCH_LOGIN_ATTEMPTS_PER_ADDRESS`, `SITEWATCH_LOGIN_FAILURES_PER_USERNAME`): over a limit the answer is 429 with
Retry-After, before the password is even checked."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ingest.http_routes import client_address
from ingest.rate_limits import RateLimits
from live_api import audit
from live_api import identity_schemas as schemas
from live_api.auth import hash_password, hash_token, new_token, password_matches
from live_api.deps import Admin, Conn, SettingsDep, error_response
from live_api.routes.registry import IDENTITY_KINDS, already_exists, identity_taken
from live_api.routes.tokens import check_scope
from store.models import Account, AuditEntry, Token

router = APIRouter(prefix="/api")


class _Hashing:
    """Argon2id holds 64 MiB per hash: at most two at once, whatever the request rate, and at
    most MAX_WAITING requests waiting for them (more are told to come back)."""

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(2)
        self.waiting = 0


_hashing = _Hashing()
MAX_WAITING = 16
SINCE = Query(default=None, description="entries at or after this time (with its zone)")

LOGIN_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: error_response("wrong username or password (which of the two is not said)"),
    429: error_response("too many failed logins for this username or address; Retry-After"),
}


@router.post("/users", status_code=201, response_model=schemas.AccountOut, tags=["auth"])
async def create_account(
    body: schemas.AccountCreate, conn: Conn, admin: Admin
) -> schemas.AccountOut:
    """Admin only. A person's account with the scope of a token of the same role; the password
    is stored only as its Argon2id hash. The username shares one namespace with engineer,
    device and broker ids (409 if taken by any)."""
    await check_scope(conn, body.role, body.region_code, body.engineer_id, body.device_ids)
    taken = await identity_taken(conn, body.username, kinds=IDENTITY_KINDS)
    if taken:
        raise HTTPException(409, already_exists(body.username, taken))
    async with _hashing.slots:
        password_hash = await run_in_threadpool(hash_password, body.password)
    row = (
        await conn.execute(
            insert(Account)
            .values(
                username=body.username,
                password_hash=password_hash,
                role=body.role,
                region_code=body.region_code if body.role == "regulator" else None,
                engineer_id=body.engineer_id if body.role == "engineer" else None,
                device_ids=sorted(set(body.device_ids or [])) if body.role == "vendor" else [],
            )
            .returning(Account)
        )
    ).one()
    out = _account_out(row)
    await audit.record(
        conn,
        admin,
        "account.create",
        f"account:{row.username}",
        **out.model_dump(exclude={"username", "created_at"}),
    )
    return out


@router.get("/users", response_model=list[schemas.AccountOut], tags=["auth"])
async def list_accounts(conn: Conn, _admin: Admin) -> list[schemas.AccountOut]:
    """Admin only. Every account with its scope (never a password hash)."""
    rows = (await conn.execute(select(Account).order_by(Account.username))).all()
    return [_account_out(r) for r in rows]


def _account_out(row: Any) -> schemas.AccountOut:
    return schemas.AccountOut(
        username=row.username,
        role=row.role,
        region_code=row.region_code,
        engineer_id=row.engineer_id,
        device_ids=list(row.device_ids or []),
        created_at=row.created_at,
    )


@router.post(
    "/login",
    response_model=schemas.LoginOut,
    tags=["auth"],
    responses=LOGIN_ANSWERS,
    openapi_extra={"security": []},
)
async def login(body: schemas.Login, request: Request, settings: SettingsDep) -> Any:
    """A bearer token for an account, valid `SITEWATCH_LOGIN_TOKEN_TTL_S` (8 hours). Wrong
    credentials are 401 whichever part was wrong; failed attempts are recorded in the audit
    log and limited per username and per address (429 with Retry-After)."""
    limits: RateLimits = request.app.state.rate_limits
    address = client_address(request)
    username = body.username.lower()
    # a unit of both limits is taken before the password is checked, so parallel guesses
    # cannot all pass; a successful login gives the username's back
    refused = limits.take("login_address", address) or limits.take("login_username", username)
    if refused is not None:
        return _error(429, refused.message, {"Retry-After": str(refused.retry_after_s)})
    if _hashing.waiting >= MAX_WAITING:
        return _error(429, "too many sign-ins at once; retry in a moment", {"Retry-After": "2"})
    engine: AsyncEngine = request.app.state.engine
    # no database connection is held while the password is checked: a burst of sign-ins must
    # not take the pool that ingest and the API share
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(Account).where(func.lower(Account.username) == username))
        ).first()
    _hashing.waiting += 1
    try:
        async with _hashing.slots:
            ok = await run_in_threadpool(
                password_matches, row.password_hash if row else None, body.password
            )
    finally:
        _hashing.waiting -= 1
    async with engine.begin() as conn:
        if row is None or not ok:
            await audit.record(
                conn, "anonymous", "login.failed", f"account:{body.username}", address=address
            )
            return _error(401, "wrong username or password", {"WWW-Authenticate": "Bearer"})
        limits.clear("login_username", username)
        token = new_token()
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=settings.login_token_ttl_s)
        token_id = (
            await conn.execute(
                insert(Token)
                .values(
                    token_hash=hash_token(token),
                    role=row.role,
                    region_code=row.region_code,
                    engineer_id=row.engineer_id,
                    device_ids=list(row.device_ids or []),
                    expires_at=expires_at,
                    account=row.username,
                )
                .returning(Token.id)
            )
        ).scalar_one()
        await audit.record(
            conn,
            f"account:{row.username}",
            "login",
            f"account:{row.username}",
            token_id=token_id,
            address=address,
        )
    return schemas.LoginOut(token=token, expires_at=expires_at, role=row.role)


def _error(status: int, detail: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


@router.get("/audit", response_model=list[schemas.AuditOut], tags=["auth"])
async def audit_log(
    conn: Conn,
    _admin: Admin,
    actor: str | None = Query(default=None, max_length=80, description="e.g. account:wang.li"),
    target: str | None = Query(default=None, max_length=160, description="e.g. engineer:E-1"),
    since: dt.datetime | None = SINCE,
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[schemas.AuditOut]:
    """Admin only. Every change made through the API and every sign-in, oldest first."""
    query = select(AuditEntry).order_by(AuditEntry.id).limit(limit)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if target:
        query = query.where(AuditEntry.target == target)
    if since is not None:
        if since.tzinfo is None:
            raise HTTPException(422, "since needs a time zone (e.g. 2026-12-06T08:00:00+08:00)")
        query = query.where(AuditEntry.at >= since)
    rows = (await conn.execute(query)).all()
    return [
        schemas.AuditOut(
            at=r.at, actor=r.actor, action=r.action, target=r.target, details=r.details or {}
        )
        for r in rows
    ]
