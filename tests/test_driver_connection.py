"""store.db.driver_connection on the stack's PostgreSQL: a pooled connection that PostgreSQL
closed, or whose statement was cancelled half way, fails once as transient and is replaced,
never handed out again (the ingest gate's replay check and memory run on it)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from config.settings import Settings
from store.db import async_engine, driver_connection
from store.retry import is_transient
from tests.stack_client import StackClient


def test_a_connection_closed_in_the_pool_fails_once_then_a_new_one_is_used(
    sw: StackClient,
) -> None:
    async def run() -> tuple[BaseException | None, int, int]:
        engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)
        try:
            async with driver_connection(engine) as conn:
                first = await conn.fetchval("SELECT pg_backend_pid()")
            killer = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)
            async with killer.connect() as other:  # the pooled one is closed by the server
                await other.exec_driver_sql(f"SELECT pg_terminate_backend({first})")
            await killer.dispose()
            await asyncio.sleep(0.2)
            error: BaseException | None = None
            try:
                async with driver_connection(engine) as conn:
                    await conn.fetchval("SELECT 1")
            except Exception as exc:
                error = exc
            async with driver_connection(engine) as conn:
                second = await conn.fetchval("SELECT pg_backend_pid()")
            return error, first, second
        finally:
            await engine.dispose()

    error, first, second = asyncio.run(run())
    assert error is None or is_transient(error), repr(error)  # the driver may notice first
    assert second != first


def test_a_connection_the_driver_cannot_use_is_replaced(sw: StackClient) -> None:
    """What a restart of PostgreSQL left once (a fault test): the driver still taking in the
    server's last error when the connection was used again."""

    async def run() -> tuple[BaseException, int, int]:
        engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)
        try:
            with pytest.raises(Exception) as caught:
                async with driver_connection(engine) as conn:
                    first = await conn.fetchval("SELECT pg_backend_pid()")
                    raise asyncpg.InternalClientError(
                        "cannot switch to state 12; another operation (2) is in progress"
                    )
            async with driver_connection(engine) as conn:
                second = await conn.fetchval("SELECT pg_backend_pid()")
            return caught.value, first, second
        finally:
            await engine.dispose()

    error, first, second = asyncio.run(run())
    assert is_transient(error), repr(error)
    assert second != first  # not pooled again


def test_a_statement_cancelled_half_way_does_not_leave_its_connection_busy(
    sw: StackClient,
) -> None:
    async def run() -> int:
        engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)
        try:

            async def slow() -> None:
                async with driver_connection(engine) as conn:
                    await conn.fetchval("SELECT pg_sleep(5)")

            task = asyncio.create_task(slow())
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with driver_connection(engine) as conn:  # the only pooled connection, or new
                return int(await conn.fetchval("SELECT 41 + 1"))
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == 42
