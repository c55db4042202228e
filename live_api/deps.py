"""Dependencies as type aliases, so handlers read like prose."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import false, func, or_, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from config.env import dataclass_from_env
from config.settings import Settings
from geofence.codes import code_covers, code_prefix, normalise_code
from live_api.auth import Caller, actor_name, hash_token
from live_api.schemas import ErrorOut
from rules.credit import CreditModel, EligibilityRules
from store.models import Token

bearer = HTTPBearer(
    auto_error=False, description="A token from POST /api/tokens or DATA_DIR/admin.token"
)


def state(request: Request) -> Any:
    return request.app.state


def _sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE of a driver error (asyncpg's, through SQLAlchemy's adapter)."""
    for err in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if isinstance(state, str) and state:
            return state
    if isinstance(exc, DataError):
        return "22000"
    if isinstance(exc, IntegrityError):
        return "23000"
    return ""


def _db_reason(exc: DBAPIError) -> str:
    text = str(exc.orig or exc)
    if "0x00" in text or "\\u0000" in text:
        return "text must not contain NUL (U+0000) characters"
    return text.splitlines()[0][:300]


async def caller_for_token(engine: AsyncEngine, token: str | None) -> Caller | None:
    if not token or len(token) > 200:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Token).where(
                    Token.token_hash == hash_token(token),
                    Token.revoked_at.is_(None),
                    or_(Token.expires_at.is_(None), Token.expires_at > func.now()),
                )
            )
        ).first()
    if row is None:
        return None
    return Caller(
        row.role,
        row.region_code,
        row.engineer_id,
        tuple(row.device_ids or ()),
        actor=actor_name(account=row.account, token_id=row.id),
    )


async def get_caller(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Caller:
    caller = await caller_for_token(request.app.state.engine, creds.credentials if creds else None)
    if caller is None:
        raise HTTPException(
            401, "missing or unknown bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


async def get_conn(
    request: Request, _caller: Annotated[Caller, Depends(get_caller)]
) -> AsyncIterator[AsyncConnection]:
    """One transaction per request, taken once the caller is known: the token is looked up on
    a connection of its own, which is back in the pool before this one is taken (a request
    holding one while waiting for a second would let a burst of requests, valid token or
    not, hold every connection). Values PostgreSQL cannot store (NUL characters, lone UTF-16
    surrogates, numbers out of a column's range) become 422 with the reason, never 500."""
    engine: AsyncEngine = request.app.state.engine
    try:
        async with engine.begin() as conn:
            yield conn
    except HTTPException:
        raise
    except UnicodeError as exc:
        raise HTTPException(
            422, "text must be valid UTF-8 (no lone UTF-16 surrogates such as \\ud800)"
        ) from exc
    except DBAPIError as exc:
        state = _sqlstate(exc)
        if state.startswith("22"):  # data exception: the value, not the server, is at fault
            raise HTTPException(422, f"a value cannot be stored: {_db_reason(exc)}") from exc
        if state.startswith("23"):  # integrity constraint violation
            raise HTTPException(409, f"conflicts with stored data: {_db_reason(exc)}") from exc
        raise


async def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if caller.role != "admin":
        raise HTTPException(
            403, f"this call needs the admin role; your token has role {caller.role}"
        )
    return caller


@functools.cache
def credit_rules() -> tuple[CreditModel, EligibilityRules]:
    """The credit model and filing rules of this deployment (environment
    ``SITEWATCH_CREDIT_*``, ``SITEWATCH_ELIGIBILITY_*``), read once."""
    return (
        dataclass_from_env(CreditModel, "SITEWATCH_CREDIT_"),
        dataclass_from_env(EligibilityRules, "SITEWATCH_ELIGIBILITY_"),
    )


def unknown(caller: Caller, kind: str, ident: str) -> HTTPException:
    """An id that does not exist: 404 for an admin; for anyone else the very 403 of an id
    outside their scope, so a token cannot learn which ids exist."""
    if caller.role == "admin":
        return HTTPException(404, f"no {kind} {ident!r}")
    return HTTPException(403, f"{kind} {ident!r} is outside your region or role")


Since = Query(default=None, description="ISO-8601 date-time; naive means UTC")


def as_utc(value: dt.datetime) -> dt.datetime:
    """A date-time of a query (naive means UTC) with its zone."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


Conn = Annotated[AsyncConnection, Depends(get_conn, scope="function")]
CurrentCaller = Annotated[Caller, Depends(get_caller)]
Admin = Annotated[Caller, Depends(get_admin)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry for an error answer (`{"detail": ...}`)."""
    return {"model": ErrorOut, "description": description}


def scope_region(caller: Caller, region: str | None) -> str | None:
    """The normalised `region` filter of a list call; 403 when a regulator names a region
    outside its own (lists are otherwise filtered to what the caller may see)."""
    if region is None or region == "":
        return None
    try:
        code = normalise_code(region)
    except ValueError as exc:
        raise HTTPException(422, f"region {region!r} is not a 6-digit code") from exc
    if caller.role == "regulator" and not code_covers(caller.region_code or "", code):
        raise HTTPException(
            403, f"region {code} is outside your region {caller.region_code}; ask for yours"
        )
    return code


def in_region(column: Any, code: str) -> Any:
    """SQL: `column` holds a code inside region `code` (the covering rule of CONTRACT
    section 4: prefix once trailing '00' pairs are removed; '000000' covers nothing)."""
    prefix = code_prefix(code) if code else ""
    return column.startswith(prefix, autoescape=True) if prefix else false()
