"""The rejected log stays bounded under a flood: every rejection is counted exactly in
`rejected_tallies` (source, reason, hour), but only the first `sample_per_hour` of each
(source, reason, hour) are kept as rows of `rejected_messages` (with their excerpt). A hostile
client sending 2,000 bad requests a second costs a few hundred rows an hour, not millions.

Exactly once: the tallies and the rows are written in one transaction with the next offset of
each rejected.v1 partition (`sink_offsets`); a batch redelivered after a crash skips what was
already counted. Dead letters of the worker itself (source `worker`) are always kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

TallyKey = tuple[str, str, dt.datetime]

_OFFSETS = text(
    "SELECT partition, next_offset FROM sink_offsets WHERE topic = :t AND partition = ANY(:p)"
)
_SAVE_OFFSET = text(
    "INSERT INTO sink_offsets (topic, partition, next_offset) VALUES (:t, :p, :o) "
    "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = "
    "greatest(sink_offsets.next_offset, EXCLUDED.next_offset)"
)
_TALLY = text(
    "INSERT INTO rejected_tallies (source, reason, hour, total, kept) "
    "VALUES (:s, :r, :h, :n, 0) ON CONFLICT (source, reason, hour) "
    "DO UPDATE SET total = rejected_tallies.total + EXCLUDED.total "
    "RETURNING total - :n AS before, kept"
)
_KEPT = text(
    "UPDATE rejected_tallies SET kept = kept + :k WHERE source = :s AND reason = :r AND hour = :h"
)


def hour_of(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def new_events(conn: AsyncConnection, topic: str, events: Sequence[Any]) -> list[Any]:
    """The events not counted yet, and their partitions' next offsets saved."""
    parts = sorted({e.message.tp.partition for e in events})
    rows = await conn.execute(_OFFSETS, {"t": topic, "p": parts})
    done = {int(r[0]): int(r[1]) for r in rows}
    fresh = [e for e in events if e.message.offset >= done.get(e.message.tp.partition, 0)]
    top: dict[int, int] = {}
    for e in events:
        p = e.message.tp.partition
        top[p] = max(top.get(p, 0), e.message.offset + 1)
    for p, offset in top.items():
        await conn.execute(_SAVE_OFFSET, {"t": topic, "p": p, "o": offset})
    return fresh


async def tally_and_sample(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], sample_per_hour: int
) -> list[dict[str, Any]]:
    """Count `rows` into the tallies; returns the rows to keep."""
    groups: dict[TallyKey, list[dict[str, Any]]] = {}
    for row in rows:
        key = (str(row["source"])[:16], str(row["reason"])[:32], hour_of(row["received_at"]))
        groups.setdefault(key, []).append(row)
    kept: list[dict[str, Any]] = []
    for (source, reason, hour), members in groups.items():
        result = (
            await conn.execute(_TALLY, {"s": source, "r": reason, "h": hour, "n": len(members)})
        ).one()
        room = len(members) if source == "worker" else max(0, sample_per_hour - int(result.kept))
        chosen = members[:room]
        if chosen:
            await conn.execute(_KEPT, {"s": source, "r": reason, "h": hour, "k": len(chosen)})
            kept.extend(chosen)
    return kept
