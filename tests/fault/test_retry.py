"""store.retry: which database errors are waited out, and the retry loop itself (no stack)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine

from store import retry
from store.retry import is_transient, retry_db, skip_while_db_down


def test_refused_connection_through_sqlalchemy_is_transient() -> None:
    """What the worker sees while PostgreSQL is down: a real refused connection."""
    from stack.processes import free_port

    engine = create_async_engine(f"postgresql+asyncpg://x@127.0.0.1:{free_port()}/x")

    async def connect() -> None:
        try:
            async with engine.connect():
                pass
        finally:
            await engine.dispose()

    with pytest.raises(Exception) as caught:
        asyncio.run(connect())
    assert is_transient(caught.value), repr(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionRefusedError(111, "Connect call failed"),
        sa_exc.TimeoutError("QueuePool limit reached"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    ],
)
def test_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        sa_exc.ProgrammingError("SELEC", {}, Exception("syntax error")),
        sa_exc.DataError("INSERT", {}, Exception("invalid input syntax")),
        ValueError("bad"),
        KeyError("x"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.UntranslatableCharacterError("\\u0000 cannot be converted to text"),
    ],
)
def test_not_transient(error: BaseException) -> None:
    assert not is_transient(error)


@pytest.mark.parametrize(
    ("error", "poison"),
    [
        # asyncpg's own errors, as store.db.driver_connection raises them
        (asyncpg.UntranslatableCharacterError("\\u0000 cannot be converted to text"), True),
        (asyncpg.StringDataRightTruncationError("value too long"), True),
        (asyncpg.UniqueViolationError("duplicate key"), True),
        (asyncpg.ProgramLimitExceededError("index row size exceeds maximum"), True),
        (asyncpg.UndefinedTableError("relation does not exist"), False),
        (asyncpg.AdminShutdownError("terminating connection"), False),
        # asyncpg's own refusal of a parameter (an InterfaceError, and a ValueError)
        (asyncpg.exceptions._base.DataError("invalid input for query argument $1"), True),
    ],
)
def test_poison_from_the_driver(error: BaseException, poison: bool) -> None:
    assert retry.is_poison(error) is poison


def test_retry_db_waits_out_transient_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_DELAY_S", 0.001)
    calls: list[int] = []

    async def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 4:
            raise ConnectionRefusedError(111, "refused")
        return x * 2

    assert asyncio.run(retry_db(flaky, 21, what="test")) == 42
    assert calls == [21, 21, 21, 21]


def test_retry_db_raises_other_errors_at_once() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(sa_exc.IntegrityError):
        asyncio.run(retry_db(broken, what="test"))
    assert calls == 1


def test_timer_runs_are_skipped_or_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    @skip_while_db_down("a timer")
    async def timer() -> None:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    runs: list[int] = []

    @skip_while_db_down("another timer")
    async def buggy() -> None:
        runs.append(1)
        raise ValueError("a bug stays visible")

    with caplog.at_level(logging.WARNING):
        asyncio.run(timer())
    assert "a timer skipped" in caplog.text
    # a bug is logged with its traceback, and does not stop the worker: the next run runs
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        asyncio.run(buggy())
        asyncio.run(buggy())
    assert len(runs) == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "another timer failed; the next run tries again"
    ] * 2
    assert all(r.exc_info and r.exc_info[0] is ValueError for r in errors)
