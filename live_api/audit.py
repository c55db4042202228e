"""The audit log (CONTRACT §6.2): every change made through the API and every sign-in, with
its named actor, written in the transaction of the change itself (both or neither). The
application's database role may only append to it (stack.postgres.grant_app_role).

Details never hold a personal field in clear, a password or a token."""

from __future__ import annotations

from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import insert

from live_api.auth import Caller
from store.models import AuditEntry

MAX_TEXT = 160


async def record(conn: Any, actor: Caller | str, action: str, target: str, **details: Any) -> None:
    name = actor.name if isinstance(actor, Caller) else actor
    await conn.execute(
        insert(AuditEntry).values(
            actor=name[:80],
            action=action,
            target=target[:MAX_TEXT],
            details=jsonable_encoder({k: v for k, v in details.items() if v is not None}),
        )
    )
