"""The stream worker's state per engineer (rules.engineer_state.EngineerState: the track's
event-time window and the `missing_log` clock), kept in PostgreSQL as a head row per engineer
(`engineer_states`: the anchor, the newest window fix's time, the clock). The window's fixes
are not stored again: they are rows of `fixes`, and a head is read back with the engineer's
fixes from the window's earliest possible time on (rules.engineer_state.from_head).

A batch's heads are written in the batch's own transaction, with the fixes, transitions and
alerts derived from them, so state and facts can never disagree: a batch either happened
entirely or not at all, and a redelivered one finds its fixes already in the state
(duplicates, no new events). Until the fifth session the states lived in a Faust table, whose
changelog took one Kafka record per engineer per batch, a third of the worker's CPU; until
the eighth each window fix had a row of its own (docs/BENCHMARKS.md).

`EngineerStates` keeps the decoded states of the engineers the worker saw last, so a batch
reads from PostgreSQL only engineers it has not seen (new, evicted, or after its partitions
moved: `forget`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from geofence.tracking import TrackFix
from rules.engineer_batch import Thresholds
from rules.engineer_state import EngineerState, window_from

__all__ = ["MAX_CACHED", "EngineerStates", "load", "save"]


MAX_CACHED = 20_000  # engineers whose decoded state stays in memory

# One primary-key probe per engineer: as `= ANY(...)` the planner read the whole table for a
# few hundred of 20,000 engineers (every batch while a worker meets its engineers).
LOAD_SQL = text(
    "SELECT s.engineer_id, CAST(s.state AS text) FROM unnest(CAST(:ids AS text[])) AS t(id) "
    "CROSS JOIN LATERAL (SELECT x.engineer_id, x.state FROM engineer_states x "
    "WHERE x.engineer_id = t.id OFFSET 0) s"
)
# An engineer's fixes from a time on: a range of ix_fixes_engineer_day_ts per engineer (the
# local date bounds the scan; the time filters within it). OFFSET 0 keeps the planner from
# flattening it into a join that scans the table (as store.evidence's TAIL_SQL).
WINDOW_FIXES_SQL = text(
    "SELECT f.engineer_id, f.msg_id, f.ts, ST_X(f.geom), ST_Y(f.geom), f.acc_m, f.project_ids "
    "FROM unnest(CAST(:e AS text[]), CAST(:d AS date[]), CAST(:t AS timestamptz[]), "
    "CAST(:u AS timestamptz[])) AS t(engineer_id, day, ts, upto) CROSS JOIN LATERAL ("
    "SELECT * FROM fixes x WHERE x.engineer_id = t.engineer_id AND x.local_date >= t.day "
    "AND x.ts >= t.ts AND x.ts <= t.upto OFFSET 0) f"
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
    ">= coalesce(engineer_states.stream_ts, '-Infinity')"
)
SLACK_S = 1.0  # read a little beyond the window's limits: from_head draws the line


async def load(
    conn: AsyncConnection, engineer_ids: Iterable[str], rules: Thresholds
) -> dict[str, EngineerState]:
    """The stored states of `engineer_ids` (engineers without one are left out)."""
    ids = sorted(set(engineer_ids))
    if not ids:
        return {}
    heads = {e: orjson.loads(s) for e, s in await conn.execute(LOAD_SQL, {"ids": ids})}
    since = {  # the engineers with a window, and its earliest possible time
        e: t
        for e, h in heads.items()
        if h.get("format") == 3 and (t := window_from(h, rules.allowed_lateness_s)) is not None
    }
    wanted = sorted(since)
    fixes: dict[str, list[TrackFix]] = {e: [] for e in wanted}
    if wanted:
        tz = ZoneInfo(rules.timezone)
        starts = [_from(since[e], tz) for e in wanted]
        # no window fix is newer than the head's newest (inaccurate ones after it are not read)
        upto = [_at(float(heads[e]["newest"]) + SLACK_S) for e in wanted]
        params = {"e": wanted, "d": [s[0] for s in starts], "t": [s[1] for s in starts], "u": upto}
        for e, msg_id, ts, lon, lat, acc_m, projects in await conn.execute(
            WINDOW_FIXES_SQL, params
        ):
            fixes[e].append(
                TrackFix(msg_id, ts.timestamp(), lon, lat, acc_m, tuple(projects or ()))
            )
    out = {}
    for e, head in heads.items():
        if head.get("format") != 3:  # stored with its window
            out[e] = EngineerState.from_dict(head)
            continue
        out[e] = EngineerState.from_head(
            head,
            fixes.get(e, ()),
            allowed_lateness_s=rules.allowed_lateness_s,
            max_accuracy_m=rules.max_accuracy_m,
        )
    return out


def _from(t: float, tz: ZoneInfo) -> tuple[dt.date, dt.datetime]:
    """The local date and time to read an engineer's fixes from."""
    at = _at(t - SLACK_S)
    return at.astimezone(tz).date(), at


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


async def save(conn: AsyncConnection, states: Mapping[str, EngineerState]) -> None:
    """Store the heads of `states` (inside the caller's transaction, the one that writes
    their fixes)."""
    if not states:
        return
    ids = sorted(states)
    heads = [orjson.dumps(states[e].head_dict()).decode() for e in ids]
    stream_ts = [states[e].clock.stream_ts for e in ids]
    await conn.execute(SAVE_SQL, {"e": ids, "s": heads, "ts": stream_ts})


class EngineerStates:
    """Decoded states of recently seen engineers, in recency order, at most `max_cached`."""

    def __init__(self, rules: Thresholds, max_cached: int = MAX_CACHED) -> None:
        self._rules = rules
        self._max = max_cached
        self._cached: dict[str, EngineerState] = {}
        self.reads = 0  # engineers asked from PostgreSQL, for tests and logs

    async def get(
        self, conn: AsyncConnection, engineer_ids: Iterable[str]
    ) -> dict[str, EngineerState]:
        """The state of each of `engineer_ids` that has one: from memory, else stored."""
        ids = set(engineer_ids)
        out = {e: self._cached[e] for e in ids if e in self._cached}
        missing = ids - out.keys()
        if missing:
            self.reads += len(missing)
            out.update(await load(conn, missing, self._rules))
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
