"""The stream worker's state per engineer (rules.engineer_batch.EngineerState: the track's
event-time window and the `missing_log` clock), kept in PostgreSQL: per engineer a head row
(`engineer_states`: the anchor and the clock) and a row per fix of the window
(`engineer_track_window`), added and removed as the window moves.

A batch's states are written in the batch's own transaction, with the fixes, transitions and
alerts derived from them, so state and facts can never disagree: a batch either happened
entirely or not at all, and a redelivered one finds its fixes already in the state
(duplicates, no new events). Until the fifth session the states lived in a Faust table, whose
changelog took one Kafka record per engineer per batch, a third of the worker's CPU
(docs/BENCHMARKS.md).

`EngineerStates` keeps the decoded states of the engineers the worker saw last, so a batch
reads from PostgreSQL only engineers it has not seen (new, evicted, or after its partitions
moved: `forget`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rules.engineer_batch import EngineerState, compact_fix

__all__ = ["MAX_CACHED", "EngineerStates", "load", "save"]

MAX_CACHED = 20_000  # engineers whose decoded state stays in memory

LOAD_SQL = text(
    "SELECT engineer_id, CAST(state AS text) FROM engineer_states "
    "WHERE engineer_id = ANY(CAST(:ids AS text[]))"
)
LOAD_WINDOW_SQL = text(
    "SELECT engineer_id, CAST(fix AS text) FROM engineer_track_window "
    "WHERE engineer_id = ANY(CAST(:ids AS text[]))"
)
# A head never goes back in stream time: around a rebalance two workers may briefly both
# process an engineer, and the one behind must not overwrite the newer state.
SAVE_SQL = text(
    "INSERT INTO engineer_states (engineer_id, state, stream_ts) "
    "SELECT t.e, CAST(t.s AS json), t.ts "
    "FROM unnest(CAST(:e AS text[]), CAST(:s AS text[]), CAST(:ts AS double precision[])) "
    "AS t(e, s, ts) ORDER BY t.e "
    "ON CONFLICT (engineer_id) DO UPDATE SET state = excluded.state, "
    "stream_ts = excluded.stream_ts, updated_at = now() "
    "WHERE coalesce(excluded.stream_ts, '-Infinity') "
    ">= coalesce(engineer_states.stream_ts, '-Infinity') "
    "RETURNING engineer_id"
)
ADD_SQL = text(
    "INSERT INTO engineer_track_window (engineer_id, msg_id, fix) "
    "SELECT t.e, t.m, CAST(t.f AS json) "
    "FROM unnest(CAST(:e AS text[]), CAST(:m AS text[]), CAST(:f AS text[])) AS t(e, m, f) "
    "ON CONFLICT DO NOTHING"
)
DROP_SQL = text(
    "DELETE FROM engineer_track_window w "
    "USING unnest(CAST(:e AS text[]), CAST(:m AS text[])) AS t(e, m) "
    "WHERE w.engineer_id = t.e AND w.msg_id = t.m"
)


async def load(conn: AsyncConnection, engineer_ids: Iterable[str]) -> dict[str, EngineerState]:
    """The stored states of `engineer_ids` (engineers without one are left out)."""
    ids = sorted(set(engineer_ids))
    if not ids:
        return {}
    heads = {e: orjson.loads(s) for e, s in await conn.execute(LOAD_SQL, {"ids": ids})}
    windows: dict[str, list[Any]] = {e: [] for e in heads}
    for e, fix in await conn.execute(LOAD_WINDOW_SQL, {"ids": sorted(heads)}):
        windows[e].append(orjson.loads(fix))
    return {e: EngineerState.from_dict({**d, "window": windows[e]}) for e, d in heads.items()}


async def save(
    conn: AsyncConnection,
    before: Mapping[str, EngineerState],
    states: Mapping[str, EngineerState],
) -> None:
    """Store `states` (inside the caller's transaction): the head of each (anchor, clock) whole,
    and of the window only what changed since `before`, the stored state of the same engineers
    (absent: none). A window holds every fix of the last `allowed_lateness_s`, up to a few
    hundred with phones reporting every 10-30 s, so writing it whole every batch would write
    each fix hundreds of times."""
    if not states:
        return
    ids = sorted(states)
    heads = [orjson.dumps(states[e].head_dict()).decode() for e in ids]
    stream_ts = [states[e].clock.stream_ts for e in ids]
    written = await conn.execute(SAVE_SQL, {"e": ids, "s": heads, "ts": stream_ts})
    added: list[tuple[str, str, str]] = []
    dropped: list[tuple[str, str]] = []
    for (e,) in written:  # a head that was behind the stored one moves no window rows either
        old = before.get(e)
        kept = {f.msg_id for f in old.track.window} if old is not None else set()
        window = states[e].track.window
        added += [
            (e, f.msg_id, orjson.dumps(compact_fix(f)).decode())
            for f in window
            if f.msg_id not in kept
        ]
        if kept:
            dropped += [(e, m) for m in sorted(kept - {f.msg_id for f in window})]
    if dropped:
        await conn.execute(DROP_SQL, {"e": [d[0] for d in dropped], "m": [d[1] for d in dropped]})
    if added:
        await conn.execute(
            ADD_SQL,
            {"e": [a[0] for a in added], "m": [a[1] for a in added], "f": [a[2] for a in added]},
        )


class EngineerStates:
    """Decoded states of recently seen engineers, in recency order, at most `max_cached`."""

    def __init__(self, max_cached: int = MAX_CACHED) -> None:
        self._max = max_cached
        self._cached: dict[str, EngineerState] = {}
        self.reads = 0  # engineers asked from PostgreSQL, for tests and logs

    async def get(
        self, engine: AsyncEngine, engineer_ids: Iterable[str]
    ) -> dict[str, EngineerState]:
        """The state of each of `engineer_ids` that has one: from memory, else stored (a
        connection is taken only then)."""
        ids = set(engineer_ids)
        out = {e: self._cached[e] for e in ids if e in self._cached}
        missing = ids - out.keys()
        if missing:
            self.reads += len(missing)
            async with engine.connect() as conn:
                out.update(await load(conn, missing))
        return out

    def remember(self, states: Mapping[str, EngineerState]) -> None:
        """After the transaction that saved `states` committed."""
        for engineer_id, state in states.items():
            self._cached.pop(engineer_id, None)
            self._cached[engineer_id] = state
        while len(self._cached) > self._max:
            del self._cached[next(iter(self._cached))]

    def forget(self) -> None:
        """Partitions moved: another worker may write these engineers from now on."""
        self._cached.clear()

    def __len__(self) -> int:
        return len(self._cached)
