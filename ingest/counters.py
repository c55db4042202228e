"""Outcome counters of the ingest edge, shared across processes through PostgreSQL.

The bridge is its own process, so its counters cannot live in the API's memory. Each gate
(the bridge's, the API's HTTP ingest) counts outcomes (``accepted``, every rejection reason,
``redelivered``) in memory and adds the deltas to the ``ingest_counters`` table
(``source``, ``outcome`` -> ``total``): the bridge about every second, the API's HTTP ingest
at most every ``FLUSH_S`` seconds while requests come and at every ``/metrics`` scrape. The
API's ``/metrics`` reads the table (:func:`totals`, live_api.metrics).

How exact: counts are taken when a batch is acknowledged. A bridge killed between an
acknowledgement and the next flush loses up to a second of counts; a message that
is redelivered after a crash before its acknowledgement is counted again. The exact record of
rejections is the ``rejected_messages`` table (``GET /api/ingest/rejected``); these counters are
for rates and dashboards.
"""

from __future__ import annotations

import logging
import time
import weakref

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("sitewatch.ingest")

FLUSH_S = 1.0

__all__ = ["FLUSH_S", "Counters", "totals"]


_LIVE: weakref.WeakSet[Counters] = weakref.WeakSet()  # this process's counters


class Counters:
    def __init__(self, source: str) -> None:
        self.source = source
        self.totals: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._last_flush = time.monotonic()
        _LIVE.add(self)

    def add(self, outcome: str, n: int = 1) -> None:
        self.totals[outcome] = self.totals.get(outcome, 0) + n
        self._pending[outcome] = self._pending.get(outcome, 0) + n

    def due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._last_flush >= FLUSH_S

    async def maybe_flush(self, engine: AsyncEngine) -> None:
        if self.due():
            await self.flush(engine)

    async def flush(self, engine: AsyncEngine) -> None:
        pending, self._pending = self._pending, {}
        self._last_flush = time.monotonic()
        if not pending:
            return
        try:
            async with engine.begin() as conn:
                await _add(conn, self.source, pending)
        except Exception:  # counters must never stop ingest: keep the deltas for next time
            log.exception("could not write the ingest counters; retrying later")
            self._restore(pending)

    def _restore(self, pending: dict[str, int]) -> None:
        for outcome, n in pending.items():
            self._pending[outcome] = self._pending.get(outcome, 0) + n


async def _add(conn: AsyncConnection, source: str, deltas: dict[str, int]) -> None:
    await conn.execute(
        text(
            "INSERT INTO ingest_counters (source, outcome, total) "
            "SELECT :s, o, n FROM unnest(CAST(:o AS text[]), CAST(:n AS bigint[])) "
            "AS u(o, n) ON CONFLICT (source, outcome) DO UPDATE SET "
            "total = ingest_counters.total + excluded.total, updated_at = now()"
        ),
        {"s": source, "o": list(deltas), "n": list(deltas.values())},
    )


async def totals(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(source, outcome, total) from the shared table, after adding what this process (the
    API: HTTP ingest) counted since its last flush."""
    for counters in list(_LIVE):
        pending, counters._pending = counters._pending, {}
        if pending:
            try:
                await _add(conn, counters.source, pending)
                await conn.commit()
            except Exception:  # report what the table holds; keep the deltas
                log.exception("could not write the ingest counters")
                await conn.rollback()
                counters._restore(pending)
    rows = await conn.execute(
        text("SELECT source, outcome, total FROM ingest_counters ORDER BY source, outcome")
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
