"""Every SiteWatch consumer fetches with config.topics.FETCH_MAX_WAIT_MS (not Faust's
hard-coded ``fetch_max_wait_ms=1500``) and holds its fetches while records wait to be consumed
for less than config.topics.PREFETCH_BACKOFF_S (not aiokafka's 100 ms)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from config import topics
from config.settings import Settings
from stack.up import Stack
from streams.worker import build_app


def test_worker_consumer_uses_the_fetch_settings(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path))

    async def create() -> Any:
        return app.consumer._thread._create_worker_consumer(app.transport)  # not started

    consumer = asyncio.run(create())
    assert consumer._fetch_max_wait_ms == topics.FETCH_MAX_WAIT_MS
    assert consumer.start.__name__ == "start_then_hold"


def test_a_started_consumer_holds_fetches_for_the_backoff(running_stack: Stack) -> None:
    kafka = running_stack.env["SITEWATCH_KAFKA_URL"]

    async def backoffs() -> tuple[float, float]:
        plain = AIOKafkaConsumer(topics.LIVE, bootstrap_servers=kafka, group_id=None)
        held = AIOKafkaConsumer(topics.LIVE, bootstrap_servers=kafka, group_id=None)
        topics.hold_fetches_while_consuming(held)
        await plain.start()
        await held.start()
        try:
            # aiokafka's own attribute, before SiteWatch sets it: a version that renamed it
            # would silently ignore the backoff
            return plain._fetcher._prefetch_backoff, held._fetcher._prefetch_backoff
        finally:
            await plain.stop()
            await held.stop()

    default, held = asyncio.run(backoffs())
    assert default < topics.PREFETCH_BACKOFF_S
    assert held == topics.PREFETCH_BACKOFF_S
