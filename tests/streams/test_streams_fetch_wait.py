"""The worker's Kafka consumer uses config.topics.FETCH_MAX_WAIT_MS, not Faust's hard-coded
``fetch_max_wait_ms=1500`` (one fetch wait for every consumer of SiteWatch)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from config import topics
from config.settings import Settings
from streams.worker import build_app


def test_worker_consumer_uses_the_short_fetch_wait(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path))

    async def create() -> int:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # not started
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(create()) == topics.FETCH_MAX_WAIT_MS
