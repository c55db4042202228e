"""The versions of the worker's two registry caches (project fences, engineers' facts) in one
statement. Every batch asks for both; on a busy machine each round trip of a batch costs a
few milliseconds of waiting, and a half-loaded worker's batches are small, so their round
trips are most of their time (docs/BENCHMARKS.md, 2026-12-07)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store import engineer_facts, fence_cache

VERSIONS_SQL = text(f"SELECT ({fence_cache.VERSION_SQL.text}), ({engineer_facts.VERSION_SQL.text})")


async def read(conn: AsyncConnection) -> tuple[int, int]:
    """(the fences' version, the engineers' facts' version)."""
    fences, facts = (await conn.execute(VERSIONS_SQL)).one()
    return int(fences), int(facts)
