"""A worker batch's first and last statements, each doing two things (store.batch_trips), on
the stack's PostGIS: the first reads the cache versions and locks the chain heads, the last
writes the chain with the engineer states; a batch of fixes makes five round trips."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from config.settings import Settings
from rules import evidence_chain as chain
from store import batch_trips, cache_versions
from store.db import async_engine
from streams.engineer_writer import EngineerWriter
from tests.stack_client import StackClient
from tests.streams.scenario import tag
from tests.streams.test_engineer_states import _state
from tests.streams.test_engineer_writer import _records


def test_start_reads_the_versions_and_locks_the_heads(sw: StackClient) -> None:
    t = tag()
    a, b = f"BT-A-{t}", f"BT-B-{t}"
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=2)

    async def scenario() -> None:
        try:
            async with engine.begin() as conn:
                versions = await cache_versions.read(conn)
                assert await batch_trips.start(conn, []) == (*versions, {})
                fences, facts, heads = await batch_trips.start(conn, [a, b])  # creates them
                assert (fences, facts) == versions
                assert heads == {e: chain.Head.empty(e) for e in (a, b)}
            async with engine.begin() as conn:
                assert (await batch_trips.start(conn, [a, b]))[2] == heads
                async with engine.connect() as other:  # another writer waits for them
                    with pytest.raises(DBAPIError, match="could not obtain lock"):
                        await other.execute(
                            text(
                                "SELECT 1 FROM evidence_heads WHERE engineer_id = :e "
                                "FOR UPDATE NOWAIT"
                            ),
                            {"e": b},
                        )
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert sw.sql("SELECT count(*) FROM evidence_heads WHERE engineer_id IN (%s, %s)", a, b) == [
        (2,)
    ]


def test_finish_saves_the_states_with_the_chain_or_alone(sw: StackClient) -> None:
    t = tag()
    a, b = f"BT-C-{t}", f"BT-D-{t}"
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)

    async def scenario() -> None:
        try:
            async with engine.begin() as conn:
                head = chain.Head.empty(a)
                with_chain = batch_trips.Finish({a: _state(a, 3)})
                await with_chain.write(
                    conn,
                    {
                        "engineer_id": [a],
                        "seq": [1],
                        "kind": ["fix"],
                        "msg_id": [f"{a}-0"],
                        "ts": [1.0],
                        "order_ts": [1.0],
                        "local_date": [dt.date(2026, 3, 1)],
                        "canonical": [b"{}"],
                        "prev_hash": [head.hash],
                        "hash": [chain.link(head.hash, b"{}")],
                        "he": [a],
                        "hn": [1],
                        "hh": [chain.link(head.hash, b"{}")],
                        "hw": [1.0],
                    },
                )
                await with_chain.done(conn)  # saved with the chain: nothing more to send
                assert len(statements) == 1
                alone = batch_trips.Finish({b: _state(b, 2)})
                await alone.done(conn)
                await alone.done(conn)
                assert len(statements) == 2
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    rows = sw.sql(
        "SELECT engineer_id, stream_ts IS NOT NULL FROM engineer_states "
        "WHERE engineer_id IN (%s, %s) ORDER BY engineer_id",
        a,
        b,
    )
    assert rows == [(a, True), (b, True)]
    assert sw.sql("SELECT entries FROM evidence_heads WHERE engineer_id = %s", a) == [(1,)]


def test_a_batch_of_fixes_makes_five_round_trips(sw: StackClient) -> None:
    """BEGIN, the versions with the heads, `fixes`, the chain with the states, COMMIT: once
    the worker's caches know the engineer (its first batch also reads its state)."""
    engineer_id = sw.new_engineer("BT-R")["id"]
    settings = Settings(database_url=sw.endpoints["database"], data_dir=sw.endpoints["data_dir"])
    records = _records(engineer_id, 10, 113.93, 22.52)
    trips: list[str] = []
    engine = async_engine(settings, pool_size=1)
    sync = engine.sync_engine
    event.listen(sync, "begin", lambda _c: trips.append("BEGIN"))
    event.listen(sync, "commit", lambda _c: trips.append("COMMIT"))
    event.listen(sync, "before_cursor_execute", lambda *a: trips.append(a[2].split()[0]))

    async def noop(_: list[dict[str, Any]]) -> None:
        return None

    async def scenario() -> None:
        writer = EngineerWriter(settings, engine, noop)
        try:
            await writer.write(records[:5])
            trips.clear()
            await writer.write(records[5:])
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert trips == ["BEGIN", "WITH", "INSERT", "WITH", "COMMIT"]
    assert sw.sql("SELECT entries FROM evidence_heads WHERE engineer_id = %s", engineer_id) == [
        (10,)
    ]
