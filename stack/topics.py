"""Kafka topics of SiteWatch, declared with explicit partition counts.

tansu (and Kafka with auto-create) would otherwise create them with its own count and Faust
would stop with PartitionsMismatch.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

FIXES = "fixes.v1"  # engineer records (fixes, logs, OwnTracks events), key = engineer id
TELEMETRY = "telemetry.v1"  # device telemetry, key = device id
REJECTED = "rejected.v1"  # dead letters with their reason
LIVE = "live.v1"  # what the WebSocket pushes: positions, transitions, alerts, attendance

ALL = (FIXES, TELEMETRY, REJECTED, LIVE)

# How long a consumer's fetch may wait at the broker. tansu answers a fetch only when this
# wait is over, even when records are waiting (measured: 1,500 ms -> 50-750 ms per message,
# 20 ms -> 2-11 ms), so the clients' defaults (aiokafka 500 ms, Faust 1,500 ms) would be added
# to the latency of every fix. A Kafka broker answers as soon as data is there either way.
FETCH_MAX_WAIT_MS = 20

log = logging.getLogger("sitewatch.stack")


async def ensure_topics(bootstrap: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, num_partitions=partitions, replication_factor=1)
            for t in ALL
            if t not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s with %d partitions", [t.name for t in missing], partitions)
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap: str, partitions: int) -> None:
    asyncio.run(ensure_topics(bootstrap, partitions))
