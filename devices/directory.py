"""Who may report: engineers and devices with their keys, read from PostGIS and cached.

The ingest gate asks for identities by id; unknown ids are looked up in one query per batch,
so an engineer registered a moment ago is accepted at once.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gm.algorithms import sm4_decrypt
from rules.verify import DeviceIdentity, EngineerIdentity

REFRESH_S = 30.0
MAX_ENTRIES = 200_000  # per kind: unknown ids (anyone may send OsmAnd requests) must not grow it

# One statement each whatever the number of ids, one index probe per id (LATERAL ... OFFSET
# 0, as store.engineer_facts: a join or `= ANY` is planned from statistics, and a table
# analysed while nearly empty was then scanned whole). As `IN (...)` lists every length was a
# statement of its own: rendered by SQLAlchemy, prepared and planned by PostgreSQL, and a row
# of its own in pg_stat_statements, for most of the bridge's batches, since every known key
# is read again after REFRESH_S.
ENGINEERS_SQL = text(
    "SELECT e.id, e.sm2_public_key, e.retired_at FROM unnest(CAST(:ids AS text[])) AS t(id) "
    "CROSS JOIN LATERAL (SELECT * FROM engineers x WHERE x.id = t.id OFFSET 0) e"
)
DEVICES_SQL = text(
    "SELECT d.id, d.hmac_key_enc, d.retired_at, p.retired_at AS project_retired_at "
    "FROM unnest(CAST(:ids AS text[])) AS t(id) "
    "CROSS JOIN LATERAL (SELECT * FROM devices x WHERE x.id = t.id OFFSET 0) d "
    "LEFT JOIN LATERAL (SELECT y.retired_at FROM projects y WHERE y.id = d.project_id "
    "OFFSET 0) p ON true"
)
RETIRED_PROJECTS_SQL = text(
    "SELECT p.id FROM unnest(CAST(:ids AS text[])) AS t(id) CROSS JOIN LATERAL "
    "(SELECT x.id FROM projects x WHERE x.id = t.id AND x.retired_at IS NOT NULL OFFSET 0) p"
)


class DirectoryCache:
    """Implements rules.verify.Directory over a cache filled by `prefetch`."""

    def __init__(self, engine: AsyncEngine, personal_key: bytes) -> None:
        self._engine = engine
        self._key = personal_key
        self._engineers: dict[str, tuple[float, EngineerIdentity | None]] = {}
        self._devices: dict[str, tuple[float, DeviceIdentity | None]] = {}
        self._projects: dict[str, tuple[float, bool]] = {}  # retired?

    def engineer(self, engineer_id: str) -> EngineerIdentity | None:
        hit = self._engineers.get(engineer_id)
        return hit[1] if hit else None

    def device(self, device_id: str) -> DeviceIdentity | None:
        hit = self._devices.get(device_id)
        return hit[1] if hit else None

    def project_retired(self, project_id: str) -> bool:
        hit = self._projects.get(project_id)
        return hit[1] if hit else False

    async def prefetch(
        self, engineer_ids: set[str], device_ids: set[str], project_ids: set[str] | None = None
    ) -> None:
        now = time.monotonic()
        for cache in (self._engineers, self._devices, self._projects):
            if len(cache) > MAX_ENTRIES:
                _shrink(cache)
        stale_e = {i for i in engineer_ids if _stale(self._engineers.get(i), now)}
        stale_d = {i for i in device_ids if _stale(self._devices.get(i), now)}
        stale_p = {i for i in project_ids or () if _stale(self._projects.get(i), now)}
        if not stale_e and not stale_d and not stale_p:
            return
        async with self._engine.connect() as conn:
            if stale_e:
                rows = await conn.execute(ENGINEERS_SQL, {"ids": sorted(stale_e)})
                found = {
                    r.id: EngineerIdentity(r.id, r.sm2_public_key, r.retired_at is not None)
                    for r in rows
                }
                for i in stale_e:
                    self._engineers[i] = (now, found.get(i))
            if stale_d:
                rows = await conn.execute(DEVICES_SQL, {"ids": sorted(stale_d)})
                found_d = {
                    r.id: DeviceIdentity(
                        r.id,
                        bytes.fromhex(sm4_decrypt(self._key, r.hmac_key_enc)),
                        r.retired_at is not None or r.project_retired_at is not None,
                    )
                    for r in rows
                }
                for i in stale_d:
                    self._devices[i] = (now, found_d.get(i))
            if stale_p:
                rows = await conn.execute(RETIRED_PROJECTS_SQL, {"ids": sorted(stale_p)})
                retired = {r.id for r in rows}
                for i in stale_p:
                    self._projects[i] = (now, i in retired)


def _shrink(cache: dict[str, Any]) -> None:
    """Forget unknown ids first (they are asked again anyway), then everything."""
    for key in [k for k, v in cache.items() if v[1] is None]:
        del cache[key]
    if len(cache) > MAX_ENTRIES // 2:
        cache.clear()


def _stale(hit: tuple[float, object] | None, now: float) -> bool:
    # Unknown ids are asked again on every batch; known ones every REFRESH_S (key changes).
    return hit is None or hit[1] is None or now - hit[0] > REFRESH_S
