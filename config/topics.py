"""Kafka topics of SiteWatch, declared with explicit partition counts and retention.

Faust stops with PartitionsMismatch when a topic has another partition count than the app
declares, so every topic is declared here and created by stack.topic_setup (the embedded broker does not
auto-create topics).
Faust creates its table changelogs itself, compacted (`cleanup.policy=compact`).
"""

from __future__ import annotations

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
# fetch as soon as a record is there (fetch.min.bytes 1), but aiokafka has one fetch in
# flight per broker, and leaves out the partitions whose records still wait to be consumed:
# when a worker is behind on every fixes.v1 partition, its next fetch asks only for idle ones
# (telemetry, dead letters, changelogs) and is held this long, and no new fix is fetched
# meanwhile. At 500 ms that stalled the worker for half a second (docs/BENCHMARKS.md,
# 2026-12-08); idle, 50 ms is 20 small fetches a second (Faust's default is 1,500 ms).
FETCH_MAX_WAIT_MS = 50


def topic_configs(topic: str) -> dict[str, str]:
    return {**SEGMENT, **RETENTION[topic]}
