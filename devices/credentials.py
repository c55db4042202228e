"""Who is behind an HTTP ingest request: OwnTracks HTTP's Basic auth (engineer id and MQTT
password) and OsmAnd's secret phone id. Both secrets are random tokens of 144 bits, stored as
SHA-256 (a slow password hash buys nothing for them and would cost every fix).

Answers are cached for `TTL_S`: a reset password or revoked phone stops working within that."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from store.models import Engineer, Phone

TTL_S = 30.0
PHONE_ID_PREFIX = "ph"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def new_osmand_id() -> str:
    """A phone's OsmAnd id: matches wire.fields.ID_PATTERN (url-safe base64 after `ph`)."""
    return PHONE_ID_PREFIX + secrets.token_urlsafe(18)


class HttpCredentials:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._passwords: dict[str, tuple[float, str | None]] = {}
        self._phones: dict[str, tuple[float, str | None]] = {}

    async def password_ok(self, engineer_id: str, password: str) -> bool:
        now = time.monotonic()
        hit = self._passwords.get(engineer_id)
        if hit is None or hit[0] < now:
            async with self._engine.connect() as conn:
                stored = (
                    await conn.execute(
                        select(Engineer.ingest_password_hash).where(Engineer.id == engineer_id)
                    )
                ).scalar()
            hit = (now + TTL_S, stored)
            self._cache(self._passwords, engineer_id, hit)
        expected = hit[1]
        given = secret_hash(password)
        return expected is not None and hmac.compare_digest(expected, given)

    async def engineer_of_phone(self, osmand_id: str) -> str | None:
        now = time.monotonic()
        key = secret_hash(osmand_id)
        hit = self._phones.get(key)
        if hit is None or hit[0] < now:
            async with self._engine.connect() as conn:
                engineer = (
                    await conn.execute(
                        select(Phone.engineer_id).where(
                            Phone.osmand_id_hash == key, Phone.revoked_at.is_(None)
                        )
                    )
                ).scalar()
            hit = (now + TTL_S, engineer)
            self._cache(self._phones, key, hit)
        return hit[1]

    @staticmethod
    def _cache(
        cache: dict[str, tuple[float, str | None]], key: str, value: tuple[float, str | None]
    ) -> None:
        if len(cache) > 100_000:  # a flood of made-up ids must not grow the cache without end
            cache.clear()
        cache[key] = value
