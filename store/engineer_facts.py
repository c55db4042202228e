"""Engineers' registered regions and filings for the stream worker, read once per engineer
and kept until a filing is added (the newest `filings.id` moved), an engineer or filing is
changed through the API (a `registry` row in `change_log`), or `MAX_AGE_S` passed.

The two counters together are a complete version of what the rules read: an engineer
registered later is simply not cached yet. The age limit bounds how long a change made by hand in SQL goes
unnoticed. Before this cache every batch joined engineers and filings for all its engineers
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rules.certificate import Certificate, StatusEntry
from rules.engineer_batch import EngineerFacts
from store.db import connection

MAX_AGE_S = 60.0
MAX_ENGINEERS = 200_000  # beyond this the cache starts over

# Index probes per engineer (LATERAL): as `= ANY(...)` and a join the planner read the whole
# registry for a batch's few hundred engineers, every batch while the cache fills again (it
# starts over every minute), like store.engineer_states.LOAD_SQL.
FACTS_SQL = text(
    """
    SELECT e.id, e.registered_region, f.region_code, f.valid_from,
           least(f.valid_to, f.revoked_on - 1) AS valid_to, f.project_id,
           e.cert_status, e.cert_valid_to
    FROM unnest(CAST(:ids AS text[])) AS t(id)
    CROSS JOIN LATERAL (SELECT * FROM engineers x WHERE x.id = t.id OFFSET 0) e
    LEFT JOIN LATERAL (
        SELECT * FROM filings y WHERE y.engineer_id = e.id OFFSET 0
    ) f ON true
    """
)
HISTORY_SQL = text(
    "SELECT h.engineer_id, h.id, h.status, h.from_date,"
    " row_number() OVER (PARTITION BY h.engineer_id ORDER BY h.recorded_at, h.id)"
    " FROM unnest(CAST(:ids AS text[])) AS t(id) CROSS JOIN LATERAL ("
    "SELECT * FROM cert_status_history x WHERE x.engineer_id = t.id OFFSET 0) h"
)
# a new filing moves the first, a change of an engineer or a filing the second
VERSION_SQL = text(
    "SELECT (SELECT coalesce(max(id), 0) FROM filings)"
    " + (SELECT coalesce(max(id), 0) FROM change_log WHERE kind = 'registry')"
)


class EngineerFactsCache:
    def __init__(self, engine: AsyncEngine, *, max_age_s: float = MAX_AGE_S) -> None:
        self._engine = engine
        self._max_age_s = max_age_s
        self._facts: dict[str, EngineerFacts] = {}
        self._version: int | None = None
        self._since = 0.0
        self.reads = 0  # engineers read from PostgreSQL, for tests and logs

    async def get(
        self,
        engineer_ids: set[str],
        conn: AsyncConnection | None = None,
        version: int | None = None,
    ) -> dict[str, EngineerFacts]:
        """Facts of the registered engineers among `engineer_ids` (unknown ids are left out
        and asked again next time), read on `conn` when given. `version`: the registry's,
        when the caller read it (`store.cache_versions`)."""
        async with connection(self._engine, conn) as conn:
            if version is None:
                version = int((await conn.execute(VERSION_SQL)).scalar_one())
            now = time.monotonic()
            stale = now - self._since > self._max_age_s or len(self._facts) > MAX_ENGINEERS
            if version != self._version or stale:
                self._facts, self._version, self._since = {}, version, now
            # not `engineer_ids - self._facts.keys()`: a set minus a dict's keys walks every
            # key of the dict (20,000 engineers for a batch of 400: 3 % of the worker's CPU)
            facts = self._facts
            missing = {e for e in engineer_ids if e not in facts}
            if missing:
                ids = {"ids": sorted(missing)}
                rows = (await conn.execute(FACTS_SQL, ids)).all()
                history = (await conn.execute(HISTORY_SQL, ids)).all()
                self._facts.update(facts_of(rows, history))
                self.reads += len(missing)
        return {e: self._facts[e] for e in engineer_ids if e in self._facts}


def facts_of(rows: Iterable[Any], history: Iterable[Any] = ()) -> dict[str, EngineerFacts]:
    """(id, registered_region, filing region, from, to, project, cert_status, cert_valid_to)
    rows, one per filing; (engineer, entry id, status, from) rows of the certificate's
    history."""
    regs: dict[str, str] = {}
    certs: dict[str, tuple[str, dt.date | None]] = {}
    filings: dict[str, list[tuple[str, dt.date, dt.date, str | None]]] = {}
    for r in rows:
        regs[r[0]] = r[1]
        certs[r[0]] = (r[6], r[7])
        if r[2] is not None:
            filings.setdefault(r[0], []).append((r[2], r[3], r[4], r[5]))
    entries: dict[str, list[StatusEntry]] = {}
    for engineer_id, entry_id, status, from_date, recorded in history:
        entries.setdefault(engineer_id, []).append(
            StatusEntry(from_date, status, entry_id, recorded)
        )
    return {
        e: EngineerFacts(
            reg,
            tuple(filings.get(e, [])),
            Certificate.of(entries.get(e, []), valid_to=certs[e][1], current_status=certs[e][0]),
        )
        for e, reg in regs.items()
    }
