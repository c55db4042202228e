"""Engines are made here, from settings, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from config.settings import Settings

# Every statement is planned for its actual parameters. asyncpg prepares statements, and after
# five executions PostgreSQL may switch to a generic plan: for our joins against `unnest` of
# array parameters that plan is a (parallel) sequential scan of the whole table (measured:
# the evidence-chain tail lookup took 89 ms at 170k entries instead of 0.2 ms), so every batch
# grew slower as evidence_entries, fixes and ingest_seen grew.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


def async_engine(settings: Settings, *, pool_size: int = 5, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping=False` for loops that retry a failed unit of work whole (store.retry): a
    connection that died with a restart of PostgreSQL fails the first statement, the pool is
    invalidated and the retry gets a new connection, so a ping (a round trip per checkout, a
    few per batch) buys them nothing. Request handlers, which are not retried, keep it."""
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=pre_ping,
        connect_args={"server_settings": SERVER_SETTINGS},
    )


@asynccontextmanager
async def connection(
    engine: AsyncEngine, conn: AsyncConnection | None = None
) -> AsyncIterator[AsyncConnection]:
    """`conn` when the caller has one, else a connection of `engine` for the block."""
    if conn is not None:
        yield conn
        return
    async with engine.connect() as own:
        yield own
