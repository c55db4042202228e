"""What the registry routes share (live_api.routes: tokens, regions, projects, engineers,
devices): one namespace of identities, masking of personal fields, the scope query.

Scoping (docs/registry.md): single resources answer 403 outside the caller's role or region
(an unknown id too, to anyone but an admin); lists are filtered to what the caller may see.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import func, insert, select, text, update

from devices.broker import BrokerError
from live_api import audit, schemas
from live_api.deps import (
    error_response,
)
from store.models import (
    Account,
    AuditEntry,
    ChangeLog,
    Device,
    Engineer,
    Project,
)

MAX_VERTICES = 100_000
SAFE_ID_RE = re.compile(schemas.ID_PATTERN)
# Engineers and devices are MQTT accounts too: they share one namespace with the broker's own,
# and with the accounts of people (CONTRACT §6.2: no id can mean two identities).
IDENTITY_KINDS = ("broker", "engineer", "device", "account")
RESERVED_PREFIX = "sitewatch-"
BROKER_DOWN: dict[int | str, dict[str, Any]] = {
    503: error_response("the MQTT broker did not answer; nothing was stored, retry")
}
RegionQuery = Query(
    default=None,
    pattern=schemas.CODE_PATTERN,
    description="only what lies in this region (6-digit code); a regulator may name only "
    "its own region or one inside it (403 otherwise)",
)


def _personal_key(request: Request) -> bytes:
    return request.app.state.personal_key  # type: ignore[no-any-return]


def masked(stars: int, last4: str | None, encrypted: bytes | None) -> str | None:
    """The response form of a personal field: stars and at most its last 4 characters."""
    if encrypted is None and last4 is None:
        return None
    return "*" * stars + (last4 or "")


async def identity_taken(conn: Any, identity: str, *, kinds: tuple[str, ...]) -> str | None:
    """What already holds `identity` compared without case (`P-dup` and `p-dup` are one id):
    'engineer', 'device', 'project', 'account', 'broker' or None. Serialised per id for the rest of the
    transaction, so two registrations racing for one id cannot both pass."""
    lowered = identity.lower()
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:i))"), {"i": lowered})
    if "broker" in kinds and lowered.startswith(RESERVED_PREFIX):
        return "broker"
    columns = {
        "engineer": Engineer.id,
        "device": Device.id,
        "project": Project.id,
        "account": Account.username,
    }
    for kind in kinds:
        column = columns.get(kind)
        if column is not None:
            hit = await conn.execute(select(column).where(func.lower(column) == lowered))
            if hit.first() is not None:
                return kind
    return None


def already_exists(identity: str, holder: str) -> str:
    if holder == "broker":
        return f"id {identity!r} already exists: ids starting with {RESERVED_PREFIX!r} are the broker's own"
    return f"id {identity!r} already exists as a {holder} (ids are compared without case)"


async def _new_identity(request: Request, kind: str, identity: str) -> str:
    password = secrets.token_urlsafe(18)
    broker = request.app.state.broker
    ensure = broker.ensure_engineer if kind == "engineer" else broker.ensure_device
    try:
        await run_in_threadpool(ensure, identity, password)
    except (BrokerError, OSError) as exc:
        raise HTTPException(
            503, f"the MQTT broker did not take the {kind}'s identity ({exc}); retry"
        ) from exc
    return password


async def reset_credentials(
    conn: Any, admin: Any, model: Any, ident: str, issue: Callable[[], Awaitable[str]]
) -> schemas.Credentials:
    """A new MQTT password from `issue` for an engineer or device (the old one stops
    working), audited; 404 for an id that is not registered."""
    kind = model.__tablename__.removesuffix("s")
    if (await conn.execute(select(model.id).where(model.id == ident))).first() is None:
        raise HTTPException(404, f"no {kind} {ident!r}")
    await audit.record(conn, admin, f"{kind}.credentials", f"{kind}:{ident}")
    return schemas.Credentials(id=ident, mqtt_password=await issue())


def etag(obj: BaseModel, *hidden: bytes | None) -> str:
    """A strong ETag of an object as the API shows it, and of `hidden` parts it shows only
    masked (a phone number changed in its middle is a new version too)."""
    raw = orjson.dumps(obj.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    raw += b"".join(hashlib.sha256(h or b"").digest() for h in hidden)
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def check_if_match(request: Request, kind: str, ident: str, current: str) -> None:
    """412 when the request's If-Match names another version than `current` (CONTRACT §6.3:
    a change made on a stale read is refused instead of overwriting the one in between)."""
    wanted = request.headers.get("if-match")
    if wanted is None or wanted.strip() == "*":
        return
    # strong comparison (RFC 9110 13.1.1): a weak tag never matches
    tags = {t.strip() for t in wanted.split(",")}
    if current not in tags:
        raise HTTPException(
            412,
            f"{kind} {ident!r} changed since you read it (its ETag is now {current}): "
            "read it again and reapply your change",
        )


async def registry_changed(conn: Any) -> None:
    """Tell the stream worker's registry cache (store.engineer_facts) to start over. Its
    version is the newest id: writers take ids in the order they commit, under this lock
    (a lower id committed after a higher one would go unseen)."""
    await lock_registry(conn)
    await conn.execute(insert(ChangeLog).values(kind="registry"))


async def retire(conn: Any, model: Any, ident: str) -> bool:
    """Set the object's `retired_at` to now unless it is retired already; True when this call
    retired it (retiring twice changes nothing, CONTRACT §6.3)."""
    retired = await conn.execute(
        update(model)
        .where(model.id == ident, model.retired_at.is_(None))
        .values(retired_at=dt.datetime.now(dt.UTC))
        .returning(model.id)
    )
    return retired.first() is not None


async def lock_registry(conn: Any) -> None:
    """Held to the end of the transaction: one registry writer at a time takes its ids."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('sitewatch-registry'))"))


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """The fields that changed: {field: [before, after]} (values as the API shows them)."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


async def change_history(conn: Any, kind: str, ident: str) -> list[schemas.Change]:
    """An object's changes, from the audit log (live_api.audit): created, changed, retired."""
    rows = await conn.execute(
        select(AuditEntry)
        .where(
            AuditEntry.target == f"{kind}:{ident}",
            AuditEntry.action.in_([f"{kind}.create", f"{kind}.update", f"{kind}.retire"]),
        )
        .order_by(AuditEntry.id)
    )
    out = []
    for r in rows:
        details = r.details or {}
        if r.action.endswith(".create"):
            changes = {k: [None, v] for k, v in details.items() if v is not None}
        elif r.action.endswith(".retire"):
            changes = {"retired_at": [None, r.at.isoformat()]}
        else:
            changes = details.get("changes", {})
        out.append(schemas.Change(at=r.at, actor=r.actor, changes=changes))
    return out
