"""Create SiteWatch's Kafka topics (config.topics) that do not exist yet, with their partition
count and retention."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from config.topics import ALL, topic_configs

log = logging.getLogger("sitewatch.stack")


async def ensure_topics(bootstrap: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                t,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=topic_configs(t),
            )
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
