"""Kafka topics of SiteWatch, declared with explicit partition counts and retention.

Faust stops with PartitionsMismatch when a topic has another partition count than the app
declares, so every topic is declared here and created by stack.topic_setup (the embedded broker does not
auto-create topics).
Faust creates its table changelogs itself, compacted (`cleanup.policy=compact`).
"""

from __future__ import annotations

from typing import Any

FIXES = "fixes.v1"  # engineer records (fixes, logs, OwnTracks events), key = engineer id
TELEMETRY = "telemetry.v1"  # device telemetry, key = device id
REJECTED = "rejected.v1"  # dead letters with their reason
LIVE = "live.v1"  # what the WebSocket pushes: positions, transitions, alerts, attendance

ALL = (FIXES, TELEMETRY, REJECTED, LIVE)

HOUR_MS = 3600 * 1000
MIB = 1024 * 1024
# Time- and size-based retention (per partition), whichever is reached first. The source
# topics only have to cover a stream worker that is down or behind: what it consumed is in
# PostGIS. At 1,000 fixes/s (about 0.3 MB/s over 8 partitions) 512 MiB per partition is
# about 3.5 hours of fixes; a worker further behind than that loses the oldest
# (docs/reliability.md). live.v1 feeds open WebSockets only: a client that reconnects
# re-reads the state from the API, so an hour is plenty.
RETENTION: dict[str, dict[str, str]] = {
    FIXES: {"retention.ms": str(24 * HOUR_MS), "retention.bytes": str(512 * MIB)},
    TELEMETRY: {"retention.ms": str(24 * HOUR_MS), "retention.bytes": str(512 * MIB)},
    REJECTED: {"retention.ms": str(7 * 24 * HOUR_MS), "retention.bytes": str(128 * MIB)},
    LIVE: {"retention.ms": str(HOUR_MS), "retention.bytes": str(64 * MIB)},
}
# Retention deletes whole segments: small ones keep the log near its bound.
SEGMENT = {"segment.bytes": str(64 * MIB), "cleanup.policy": "delete"}

# How long a consumer's fetch may wait at the broker when nothing is there. Kafka answers a
# fetch as soon as a record is there (fetch.min.bytes 1). Idle, every consumer fetches its
# partitions this often: at 50 ms that was half of Kafka's CPU on an idle stack, and 0.005
# ms per fix at 4,800 fixes/s (docs/BENCHMARKS.md, 2026-12-08).
FETCH_MAX_WAIT_MS = 500
# aiokafka has one fetch in flight per broker, and leaves out of it the partitions whose
# records still wait to be consumed once they have waited `prefetch_backoff` (100 ms, not an
# argument of its consumer). A worker busy with a batch for longer then fetched only its idle
# partitions (telemetry, dead letters, changelogs), the broker held that fetch for the whole
# wait, and no new fix was fetched meanwhile: a stall of half a second at 500 ms. With this
# backoff no fetch leaves while records wait for less: the next one asks for every partition.
PREFETCH_BACKOFF_S = 1.0


def hold_fetches_while_consuming(consumer: Any) -> None:
    """Give an aiokafka consumer, before it starts, `PREFETCH_BACKOFF_S` (its fetcher is made
    by `start()`, and reads the value for every fetch)."""
    start = consumer.start

    async def start_then_hold() -> None:
        await start()
        consumer._fetcher._prefetch_backoff = PREFETCH_BACKOFF_S  # noqa: SLF001

    consumer.start = start_then_hold


def topic_configs(topic: str) -> dict[str, str]:
    return {**SEGMENT, **RETENTION[topic]}
