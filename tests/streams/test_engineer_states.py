"""The worker's engineer states in PostgreSQL (store.engineer_states), on the stack's PostGIS:
stored only when the batch's transaction commits, read back equal, moved on by the next batch
(the window's rows: only the fixes that entered or left it), and read from the database only
for engineers not held in memory."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from config.settings import Settings
from geofence.tracking import TrackFix, TrackState, advance
from rules.day_close import EngineerClock
from rules.engineer_batch import EngineerState
from store import engineer_states
from store.db import async_engine
from store.engineer_states import EngineerStates
from tests.stack_client import StackClient
from tests.streams.scenario import local, tag


def _state(engineer_id: str, fixes: int) -> EngineerState:
    """A track whose window and anchor both hold fixes (lateness 10 min, one fix a minute)."""
    track, _ = advance(
        TrackState(engineer_id=engineer_id),
        [
            TrackFix(f"{engineer_id}-{i}", local(9, i), 114.05 + i * 1e-4, 22.55, 5.0, ("P1",))
            for i in range(fixes)
        ],
        allowed_lateness_s=600,
    )
    return EngineerState(track, EngineerClock(local(9, fixes - 1), dt.date(2026, 3, 1)))


async def window_rows(conn: AsyncConnection, engineer_id: str) -> set[str]:
    rows = await conn.execute(
        text("SELECT msg_id FROM engineer_track_window WHERE engineer_id = :e"), {"e": engineer_id}
    )
    return {r[0] for r in rows}


def test_states_are_stored_with_the_transaction_and_read_back(sw: StackClient) -> None:
    t = tag()
    a, b = f"ES-A-{t}", f"ES-B-{t}"
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await engineer_states.save(conn, {}, {a: _state(a, 3)})
                raise RuntimeError("the batch failed after its states were written")
        async with engine.connect() as conn:
            assert await engineer_states.load(conn, [a, b]) == {}  # rolled back with the batch

        first = {a: _state(a, 15), b: _state(b, 2)}
        assert first[a].track.anchor is not None and len(first[a].track.window) == 11
        async with engine.begin() as conn:
            await engineer_states.save(conn, {}, first)
        async with engine.connect() as conn:
            assert await engineer_states.load(conn, [a, b, f"ES-none-{t}"]) == first
            assert await window_rows(conn, a) == {f.msg_id for f in first[a].track.window}

        later = {a: _state(a, 20)}  # five fixes entered the window, five left it
        async with engine.begin() as conn:
            await engineer_states.save(conn, first, later)
        async with engine.connect() as conn:
            assert await engineer_states.load(conn, [a, b]) == {a: later[a], b: first[b]}
            assert await window_rows(conn, a) == {f"{a}-{i}" for i in range(9, 20)}
        await engine.dispose()

    asyncio.run(scenario())


def test_only_engineers_not_in_memory_are_read(sw: StackClient) -> None:
    t = tag()
    ids = [f"ES-M{i}-{t}" for i in range(3)]
    stored = {e: _state(e, 4) for e in ids}
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def scenario() -> None:
        async with engine.begin() as conn:
            await engineer_states.save(conn, {}, stored)
        states = EngineerStates(max_cached=2)
        assert await states.get(engine, ids) == stored
        assert states.reads == 3
        newer = {ids[0]: _state(ids[0], 6), ids[1]: _state(ids[1], 6)}
        states.remember(newer)  # what a committed batch wrote
        got = await states.get(engine, ids[:2])
        assert got == newer and states.reads == 3  # from memory, not the (older) rows
        states.remember({ids[2]: stored[ids[2]]})  # over the limit: the oldest goes
        assert len(states) == 2
        assert (await states.get(engine, [ids[0]]))[ids[0]] == stored[ids[0]]
        assert states.reads == 4
        states.forget()  # partitions moved
        await states.get(engine, ids)
        assert states.reads == 7 and len(states) == 0
        await engine.dispose()

    asyncio.run(scenario())


def test_a_head_never_goes_back_in_stream_time(sw: StackClient) -> None:
    """Around a rebalance two workers may both process an engineer for a moment: the one
    that is behind commits last, and must not replace the newer head."""
    e = f"ES-R-{tag()}"
    behind, ahead = _state(e, 8), _state(e, 12)
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def scenario() -> None:
        async with engine.begin() as conn:
            await engineer_states.save(conn, {}, {e: ahead})
        async with engine.begin() as conn:
            await engineer_states.save(conn, {}, {e: behind})
        async with engine.connect() as conn:
            stored = (await engineer_states.load(conn, [e]))[e]
        assert stored == ahead  # head and window rows: the late writer changed nothing
        even_later = _state(e, 14)
        async with engine.begin() as conn:
            await engineer_states.save(conn, {e: ahead}, {e: even_later})
        async with engine.connect() as conn:
            assert (await engineer_states.load(conn, [e]))[e].clock == even_later.clock
        await engine.dispose()

    asyncio.run(scenario())
