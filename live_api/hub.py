"""Live fan-out: one Kafka consumer of live.v1 per API process, pushing each event to the
WebSocket clients whose role and region cover it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from config import topics
from geofence.codes import code_covers
from live_api.auth import Caller

log = logging.getLogger("sitewatch.api")

QUEUE_LIMIT = 10_000
DROP_LOG_EVERY = 1_000


@dataclass(eq=False)
class Subscriber:
    caller: Caller
    region: str | None
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    dropped: int = 0

    def wants(self, event: dict[str, Any]) -> bool:
        region = event.get("region_code") or ""
        if self.region and not (region and code_covers(self.region, region)):
            return False
        return self.caller.sees(
            region_code=region,
            engineer_id=event.get("engineer_id"),
            device_id=event.get("device_id"),
        )


class Hub:
    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()
        self.ready = asyncio.Event()
        self.delivered = 0

    def publish(self, events: list[dict[str, Any]]) -> None:
        subscribers = list(self.subscribers)
        for event in events:
            text: str | None = None  # serialised once, for every subscriber that wants it
            for sub in subscribers:
                if not sub.wants(event):
                    continue
                if text is None:
                    text = orjson.dumps(event).decode()
                try:
                    sub.queue.put_nowait(text)
                    self.delivered += 1
                except asyncio.QueueFull:
                    # a client that cannot keep up resyncs over REST; say so, but not per event
                    if sub.dropped % DROP_LOG_EVERY == 0:
                        log.warning(
                            "live client %s is %d messages behind: %d dropped so far",
                            sub.caller.name,
                            sub.queue.maxsize,
                            sub.dropped + 1,
                        )
                    sub.dropped += 1

    async def consume(self, bootstrap: str) -> None:
        """Follow live.v1 from its end; reconnects until cancelled."""
        while True:
            consumer = AIOKafkaConsumer(
                topics.LIVE,
                bootstrap_servers=bootstrap,
                auto_offset_reset="latest",
                group_id=None,
                # how long a fetch of idle partitions may hold the one fetch in flight
                fetch_max_wait_ms=topics.FETCH_MAX_WAIT_MS,
            )
            try:
                await consumer.start()
                # Position at the end now, so `ready` means "what is published from here on arrives".
                await consumer.seek_to_end()
                for tp in consumer.assignment():
                    await consumer.position(tp)
                self.ready.set()
                async for msg in consumer:
                    try:
                        events = orjson.loads(msg.value)
                    except orjson.JSONDecodeError:
                        log.error("undecodable live event at offset %s", msg.offset)
                        continue
                    self.publish(events if isinstance(events, list) else [events])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live consumer failed; retrying in 1 s")
                self.ready.clear()
                await asyncio.sleep(1)
            finally:
                await consumer.stop()
