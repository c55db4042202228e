"""Engines are made here, from settings, never at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from config.settings import Settings
from store.retry import is_transient

# Every statement is planned for its actual parameters. asyncpg prepares statements, and after
# five executions PostgreSQL may switch to a generic plan: for our joins against `unnest` of
# array parameters that plan is a (parallel) sequential scan of the whole table (measured:
# the evidence-chain tail lookup took 89 ms at 170k entries instead of 0.2 ms), so every batch
# grew slower as evidence_entries, fixes and ingest_seen grew.
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}
# Except the stream worker's engineer batches and the bridge (`plans="generic"`): their
# statements probe an index once per element of their arrays whatever the planner's estimates
# (LATERAL ... OFFSET 0, or a plain INSERT), which tests/test_db_plans.py checks under both kinds
# of plan, so each is planned once per connection rather than for every batch. In batches of
# 60 fixes that was 15-25 % of PostgreSQL's CPU per fix (docs/BENCHMARKS.md, 2026-12-07).
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}
PLANS = {"custom": CUSTOM_PLANS, "generic": GENERIC_PLANS}


def async_engine(
    settings: Settings,
    *,
    pool_size: int = 5,
    pre_ping: bool = True,
    plans: Literal["custom", "generic"] = "custom",
) -> AsyncEngine:
    """`pre_ping=False` for loops that retry a failed unit of work whole (store.retry): a
    connection that died with a restart of PostgreSQL fails the first statement, the pool is
    invalidated and the retry gets a new connection, so a ping (a round trip per checkout, a
    few per batch) buys them nothing. Request handlers, which are not retried, keep it.
    `plans`: how PostgreSQL plans the prepared statements (CUSTOM_PLANS, GENERIC_PLANS)."""
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=pre_ping,
        connect_args={"server_settings": PLANS[plans]},
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


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The asyncpg connection under a pooled connection of `engine`, for statements that need
    no transaction around them: each runs on its own, in one round trip. Through SQLAlchemy
    the same statement is three (BEGIN, it, ROLLBACK or COMMIT) and about twice the CPU in
    this process (docs/BENCHMARKS.md, 2026-12-07): the ingest gate runs two per batch.
    Parameters are positional (`$1`); errors are asyncpg's own (store.retry knows them).

    SQLAlchemy does not see what happens on the driver's connection, so this does what it
    would: a connection that failed other than by an error PostgreSQL reported (lost,
    cancelled in the middle of a statement) is invalidated, never pooled again."""
    async with engine.connect() as conn:
        pooled = await conn.get_raw_connection()
        try:
            yield pooled.driver_connection
        except asyncpg.InternalClientError as exc:
            # PostgreSQL closed the connection while it sat in the pool (a restart), and the
            # driver is still taking in the server's last error: a new connection will do
            await conn.invalidate()
            raise ConnectionResetError(f"database connection unusable: {exc}") from exc
        except BaseException as exc:
            if not isinstance(exc, asyncpg.PostgresError) or is_transient(exc):
                await conn.invalidate()
            raise
