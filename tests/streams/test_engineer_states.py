"""The worker's engineer states in PostgreSQL (store.engineer_states), on the stack's PostGIS:
stored only when the batch's transaction commits, read back equal (the head, and the window
from the engineer's rows in `fixes`), and read from the database only for engineers not held
in memory."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from config.settings import Settings
from geofence.tracking import TrackFix, TrackState, advance
from rules.alerts import point_wkt
from rules.day_close import EngineerClock
from rules.engineer_state import EngineerState
from store import engineer_states
from store.db import async_engine
from store.engineer_states import EngineerStates
from store.models import Fix
from streams import sinks
from tests.stack_client import StackClient
from tests.streams.scenario import TZ, local, tag

SETTINGS = Settings(allowed_lateness_s=600)


def _fixes(engineer_id: str, n: int) -> list[TrackFix]:
    """One fix a minute from 09:00 (the 10-minute lateness slides the window)."""
    return [
        TrackFix(f"{engineer_id}-{i}", local(9, i), 114.05 + i * 1e-4, 22.55, 5.0, ("P1",))
        for i in range(n)
    ]


def _state(engineer_id: str, fixes: int) -> EngineerState:
    """A track whose window and anchor both hold fixes."""
    track, _ = advance(
        TrackState(engineer_id=engineer_id), _fixes(engineer_id, fixes), allowed_lateness_s=600
    )
    return EngineerState(track, EngineerClock(local(9, fixes - 1), dt.date(2026, 3, 1)))


async def _write(
    conn: AsyncConnection,
    fixes: dict[str, list[TrackFix]],
    states: dict[str, EngineerState],
) -> None:
    """What a batch writes: its fixes (as the worker's rows), then the heads."""
    rows = [
        {
            "engineer_id": e,
            "msg_id": f.msg_id,
            "ts": dt.datetime.fromtimestamp(f.ts, dt.UTC),
            "local_date": dt.datetime.fromtimestamp(f.ts, TZ).date(),
            "geom": point_wkt(f.lon, f.lat),
            "acc_m": f.acc_m,
            "kind": "fix",
            "source": "app",
            "speed_kmh": None,
            "battery": None,
            "project_ids": list(f.project_ids),
            "region_code": "",
        }
        for e, some in fixes.items()
        for f in some
    ]
    await sinks.insert_new(conn, Fix, rows)
    await engineer_states.save(conn, states)


def test_states_are_stored_with_the_transaction_and_read_back(sw: StackClient) -> None:
    t = tag()
    a, b = f"ES-A-{t}", f"ES-B-{t}"
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await _write(conn, {a: _fixes(a, 3)}, {a: _state(a, 3)})
                raise RuntimeError("the batch failed after its states were written")
        async with engine.connect() as conn:
            assert await engineer_states.load(conn, [a, b], SETTINGS) == {}  # rolled back

        first = {a: _state(a, 15), b: _state(b, 2)}
        assert first[a].track.anchor is not None and len(first[a].track.window) == 11
        # stored too: a fix the track ignored (inaccurate) and one it refused (too late)
        refused = [
            TrackFix(f"{a}-bad", local(9, 14, 30), 114.0, 22.5, 900.0),
            TrackFix(f"{a}-late", local(9, 3, 30), 114.0, 22.5, 5.0),
        ]
        async with engine.begin() as conn:
            await _write(conn, {a: _fixes(a, 15) + refused, b: _fixes(b, 2)}, first)
        async with engine.connect() as conn:
            assert await engineer_states.load(conn, [a, b, f"ES-none-{t}"], SETTINGS) == first

        later = {a: _state(a, 20)}  # five fixes entered the window, five left it
        async with engine.begin() as conn:
            await _write(conn, {a: _fixes(a, 20)}, later)
        async with engine.connect() as conn:
            loaded = await engineer_states.load(conn, [a, b], SETTINGS)
            assert loaded == {a: later[a], b: first[b]}
            assert [f.msg_id for f in loaded[a].track.window] == [f"{a}-{i}" for i in range(9, 20)]
        await engine.dispose()

    asyncio.run(scenario())


def test_only_engineers_not_in_memory_are_read(sw: StackClient) -> None:
    t = tag()
    ids = [f"ES-M{i}-{t}" for i in range(3)]
    stored = {e: _state(e, 4) for e in ids}
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def scenario() -> None:
        async with engine.begin() as conn:
            await _write(conn, {e: _fixes(e, 4) for e in ids}, stored)
        async with engine.connect() as conn:
            states = EngineerStates(SETTINGS, max_cached=2)
            assert await states.get(conn, ids) == stored
            assert states.reads == 3
            newer = {ids[0]: _state(ids[0], 6), ids[1]: _state(ids[1], 6)}
            states.remember(newer)  # what a committed batch wrote
            got = await states.get(conn, ids[:2])
            assert got == newer and states.reads == 3  # from memory, not the (older) rows
            states.remember({ids[2]: stored[ids[2]]})  # over the limit: the oldest goes
            assert len(states) == 2
            assert (await states.get(conn, [ids[0]]))[ids[0]] == stored[ids[0]]
            assert states.reads == 4
            states.forget()  # partitions moved
            await states.get(conn, ids)
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
            await _write(conn, {e: _fixes(e, 12)}, {e: ahead})
        async with engine.begin() as conn:
            await _write(conn, {e: _fixes(e, 8)}, {e: behind})
        async with engine.connect() as conn:
            stored = (await engineer_states.load(conn, [e], SETTINGS))[e]
        assert stored == ahead  # the late writer changed nothing
        even_later = _state(e, 14)
        async with engine.begin() as conn:
            await _write(conn, {e: _fixes(e, 14)}, {e: even_later})
        async with engine.connect() as conn:
            assert (await engineer_states.load(conn, [e], SETTINGS))[e] == even_later
        await engine.dispose()

    asyncio.run(scenario())
