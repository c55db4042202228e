"""Bounded growth: delete what is older than the retention settings (docs/registry.md).

- `Settings.retention_days` (default 400; 0 or less keeps everything), by event time:
  fixes, telemetry, transitions, owntracks_events, supervision_logs (`ts`),
  rejected_tallies (`hour`), and alerts that are *resolved* (with their history).
  Open and acknowledged alerts are kept whatever their age.
- `Settings.rejected_retention_days` (default 30): the rows of the rejected log
  (`rejected_messages`, by `received_at`); their hourly counts (`rejected_tallies`) follow
  `retention_days`.
- `Settings.seen_ids_days` (default 30): `ingest_seen`, the replay-protection ids, by
  `seen_at`. A message replayed later than that is still counted once: every sink inserts
  idempotently on the message's identity, which lives as long as its fact row.

The evidence chain (`evidence_entries`, `evidence_heads`) is never trimmed; its verification
accepts missing fact rows older than `retention_days` (store.evidence.verify).

Deletes run in batches of `batch` rows, each in its own short transaction, on the indexed
timestamp columns, so a trim never holds long locks. The stream worker calls `trim` every
hour (`streams.worker`, timer `retention`); `sitewatch` deployments need nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings

log = logging.getLogger("sitewatch.retention")

# table -> timestamp column (each has an index on it); trimmed after retention_days
FACT_TABLES: dict[str, str] = {
    "fixes": "ts",
    "telemetry": "ts",
    "transitions": "ts",
    "owntracks_events": "ts",
    "supervision_logs": "ts",
    "rejected_tallies": "hour",
}
SEEN_TABLE = ("ingest_seen", "seen_at")
REJECTED_TABLE = ("rejected_messages", "received_at")


async def _delete_batches(
    engine: AsyncEngine, table: str, column: str, cutoff: dt.datetime, batch: int, extra: str = ""
) -> int:
    sql = text(
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {table} WHERE {column} < :cutoff {extra} LIMIT :batch))"
    )
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(sql, {"cutoff": cutoff, "batch": batch})).rowcount
        total += deleted
        if deleted < batch:
            return total


async def _delete_resolved_alerts(engine: AsyncEngine, cutoff: dt.datetime, batch: int) -> int:
    total = 0
    while True:
        async with engine.begin() as conn:
            ids = [
                r[0]
                for r in await conn.execute(
                    text(
                        "SELECT id FROM alerts WHERE status = 'resolved' AND ts < :cutoff "
                        "LIMIT :batch"
                    ),
                    {"cutoff": cutoff, "batch": batch},
                )
            ]
            if ids:
                await conn.execute(
                    text("DELETE FROM alert_history WHERE alert_id = ANY(:ids)"), {"ids": ids}
                )
                await conn.execute(text("DELETE FROM alerts WHERE id = ANY(:ids)"), {"ids": ids})
        total += len(ids)
        if len(ids) < batch:
            return total


async def trim(
    engine: AsyncEngine,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    batch: int = 5000,
) -> dict[str, int]:
    """Delete rows older than the retention settings; returns the count deleted per table."""
    now = now or dt.datetime.now(dt.UTC)
    started = time.monotonic()
    counts: dict[str, int] = {}
    if settings.retention_days > 0:
        cutoff = now - dt.timedelta(days=settings.retention_days)
        for table, column in FACT_TABLES.items():
            counts[table] = await _delete_batches(engine, table, column, cutoff, batch)
        counts["alerts"] = await _delete_resolved_alerts(engine, cutoff, batch)
    if settings.rejected_retention_days > 0:
        table, column = REJECTED_TABLE
        cutoff = now - dt.timedelta(days=settings.rejected_retention_days)
        counts[table] = await _delete_batches(engine, table, column, cutoff, batch)
    if settings.seen_ids_days > 0:
        table, column = SEEN_TABLE
        cutoff = now - dt.timedelta(days=settings.seen_ids_days)
        counts[table] = await _delete_batches(engine, table, column, cutoff, batch)
    log.info(
        "retention trimmed %s in %.1f s",
        {k: v for k, v in counts.items() if v} or "nothing",
        time.monotonic() - started,
    )
    return counts
