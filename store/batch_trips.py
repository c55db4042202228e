"""The first and the last statement of a worker batch's transaction, each doing the work of two.

A half-loaded worker writes small batches, and on a busy two-core machine each round trip to
PostgreSQL costs one to two milliseconds of waiting for the server and then for a core: a
batch of a few dozen fixes spent most of its time in its seven round trips (docs/BENCHMARKS.md,
2026-12-07). So:

- `start` reads the registry caches' versions (store.cache_versions) and creates and locks the
  batch's chain heads (store.evidence.lock_heads) in one statement;
- `Finish` writes the chain's new entries and heads (store.evidence) and saves the batch's
  engineer states (store.engineer_states) in one statement, or saves the states alone when
  the batch chains nothing.

Both statements are data-modifying CTEs beside the original statement: the same rows, locks
and conditions, in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules import evidence_chain as chain
from rules.engineer_state import EngineerState
from store import cache_versions, engineer_states, evidence

# One row per locked head, each with the versions; one row of versions and NULLs when the
# batch locks none.
START_STATEMENT = text(
    f"WITH heads AS ({evidence.HEADS_SQL}) "
    "SELECT v.fences, v.facts, heads.* "
    f"FROM ({cache_versions.VERSIONS_SQL.text}) AS v(fences, facts) LEFT JOIN heads ON true"
)
FINISH_STATEMENT = text(
    f"WITH states AS ({engineer_states.SAVE_SQL}), {evidence.WRITE_CTES} {evidence.WRITE_HEADS_SQL}"
)


async def start(
    conn: AsyncConnection, engineers: Sequence[str]
) -> tuple[int, int, dict[str, chain.Head]]:
    """(the fences' version, the engineers' facts' version, the chain heads of `engineers`,
    sorted, created when missing and locked until the transaction ends)."""
    rows = (
        await conn.execute(
            START_STATEMENT,
            {"e": list(engineers), "h": [chain.genesis_hash(e) for e in engineers]},
        )
    ).all()
    heads = {r.engineer_id: evidence.head_of(r) for r in rows if r.engineer_id is not None}
    return int(rows[0].fences), int(rows[0].facts), heads


class Finish:
    """Saves `states` with the chain's write (pass `write` to store.evidence.append), or alone
    at `done` when the batch wrote no chain entry."""

    def __init__(self, states: Mapping[str, EngineerState]) -> None:
        self._states = states
        self._saved = False

    async def write(self, conn: AsyncConnection, chain_params: dict[str, list[Any]]) -> None:
        await conn.execute(
            FINISH_STATEMENT, {**chain_params, **engineer_states.save_params(self._states)}
        )
        self._saved = True

    async def done(self, conn: AsyncConnection) -> None:
        if not self._saved:
            await engineer_states.save(conn, self._states)
            self._saved = True
