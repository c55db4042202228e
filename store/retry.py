"""Riding out a PostgreSQL restart: which errors mean "the database is away for a moment" and a
retry loop with backoff for work that is safe to run again (idempotent writes, reads).

Used by the stream worker (a batch's database work, its timers) and the ingest gate (directory
look-ups, replay checks, remembering accepted ids): a restart of PostgreSQL pauses them, it
does not crash them, and a Faust agent never acknowledges a batch it did not persist.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger("sitewatch.store")

T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
# SQLSTATE classes: 08 connection exception, 57 operator intervention (admin shutdown, "the
# database system is starting up / shutting down"), 53 insufficient resources (too many
# connections while backends restart).
TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53")


def _sqlstate(exc: BaseException | None) -> str:
    for e in (exc, getattr(exc, "__cause__", None)):
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(code, str):
            return code
    return ""


def is_transient(exc: BaseException) -> bool:
    """True when `exc` says the database is unreachable or restarting (try again later),
    False for errors that running the same work again would repeat (bad SQL, constraints)."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return True
        if _sqlstate(exc.orig)[:2] in TRANSIENT_SQLSTATE_CLASSES:
            return True
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return isinstance(cause, OSError | ConnectionError) or _pg_connection_error(cause)
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True  # pool could not get a (working) connection
    if isinstance(exc, OSError | ConnectionError):
        return True  # refused while the server is down
    # asyncpg's own errors (store.db.driver_connection) carry their SQLSTATE
    return _pg_connection_error(exc) or _sqlstate(exc)[:2] in TRANSIENT_SQLSTATE_CLASSES


# SQLSTATE classes that running the same work again repeats and that the data caused: 22 data
# exception (NUL in text, invalid encoding, numeric or date out of range), 23 integrity
# constraint, 54 program limit exceeded (a value too big to index).
POISON_SQLSTATE_CLASSES = ("22", "23", "54")
# Python errors a malformed value raises in pure code (a bug, but one that only this value
# triggers): the item is set aside, the rest goes on.
POISON_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


def is_poison(exc: BaseException) -> bool:
    """True when `exc` is most likely caused by the data being written or read (so the same
    item fails again however often it is tried), not by the database or broker being away."""
    if is_transient(exc):
        return False
    if isinstance(exc, sa_exc.DBAPIError):
        if _sqlstate(exc.orig)[:2] in POISON_SQLSTATE_CLASSES:
            return True
        return isinstance(exc.orig, POISON_ERRORS) or isinstance(
            getattr(exc.orig, "__cause__", None), POISON_ERRORS
        )
    if isinstance(exc, sa_exc.StatementError):
        return isinstance(exc.orig, POISON_ERRORS)
    if _sqlstate(exc)[:2] in POISON_SQLSTATE_CLASSES:  # asyncpg's own (driver_connection)
        return True
    return isinstance(exc, POISON_ERRORS)


def pg_text(value: str) -> str:
    """`value` storable in a PostgreSQL text column (which cannot hold NUL)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _pg_connection_error(exc: BaseException | None) -> bool:
    try:
        import asyncpg
        from asyncpg.exceptions._base import DataError as ArgumentError
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return False
    if isinstance(exc, ArgumentError):  # a value asyncpg cannot encode: the data, not the link
        return False
    return isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError
        | asyncpg.InterfaceError,
    )


async def retry_db(
    fn: Callable[..., Awaitable[T]], *args: Any, what: str, log_to: logging.Logger = log
) -> T:
    """`await fn(*args)`, again and again with backoff while the database is away.

    `fn` must be safe to run again after a failure (its transaction rolled back): reads,
    idempotent writes. Errors that are not transient are raised at once."""
    delay = FIRST_DELAY_S
    failing_since: float | None = None
    while True:
        try:
            result = await fn(*args)
        except Exception as exc:
            if not is_transient(exc):
                raise
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                log_to.warning("%s: database unavailable (%s); retrying", what, _short(exc))
            else:
                log_to.warning(
                    "%s: database still unavailable after %.1f s (%s); retrying in %.1f s",
                    what,
                    now - failing_since,
                    _short(exc),
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if failing_since is not None:
            log_to.warning("%s: database back after %.1f s", what, time.monotonic() - failing_since)
        return result


def skip_while_db_down(
    what: str, log_to: logging.Logger = log
) -> Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]]:
    """For periodic work (timers): a run that finds the database away is skipped with a
    warning, and one that fails otherwise is logged with its traceback, instead of raising:
    in Faust a raising timer stops the whole worker, and one periodic check must not stop
    the ingest of everything else. The next run tries again."""

    def decorate(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> None:
            try:
                await fn(*args, **kwargs)
            except Exception as exc:
                if not is_transient(exc):
                    log_to.exception("%s failed; the next run tries again", what)
                    return
                log_to.warning("%s skipped: database unavailable (%s)", what, _short(exc))

        return wrapper

    return decorate


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
