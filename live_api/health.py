"""What `/healthz` knows beyond "the database answers": a component `sitewatch up` keeps
restarting, a stream partition that has records waiting and does not advance, a bridge that
holds messages and does not forward them.

The judges are pure functions of observations; `HealthMonitor` gathers the observations every
`INTERVAL_S` in the API process (Kafka offsets of the worker's group, the files `up` and the
bridge write under `DATA_DIR/run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger("sitewatch.api")

INTERVAL_S = 5.0
STALL_S = 60.0  # records waiting and no commit for this long: the partition is stalled
RESTART_WINDOW_S = 300.0
RESTARTS_IN_WINDOW = 3  # this many restarts in the window: restarting in a loop
BRIDGE_SILENT_S = 30.0
WORKER_GROUP = "sitewatch-streams"
SOURCE_TOPICS = ("fixes.v1", "telemetry.v1", "rejected.v1")

Partition = tuple[str, int]


@dataclass
class PartitionProgress:
    committed: int
    end: int
    since: float  # when `committed` last changed (or the partition was first seen)


@dataclass
class Observations:
    partitions: dict[Partition, PartitionProgress] = field(default_factory=dict)


def track(
    before: Mapping[Partition, PartitionProgress],
    offsets: Mapping[Partition, tuple[int, int]],
    now: float,
) -> dict[Partition, PartitionProgress]:
    """New progress from (committed, end) offsets: `since` moves only when the commit moves
    or nothing waits."""
    out = {}
    for tp, (committed, end) in offsets.items():
        old = before.get(tp)
        moved = old is None or old.committed != committed or committed >= end
        out[tp] = PartitionProgress(committed, end, now if moved else old.since)
    return out


def stalled(progress: Mapping[Partition, PartitionProgress], now: float) -> list[str]:
    return sorted(
        f"{topic}[{part}] at offset {p.committed} of {p.end} for {now - p.since:.0f} s"
        for (topic, part), p in progress.items()
        if p.end > p.committed and now - p.since >= STALL_S
    )


def restarting(supervision: Mapping[str, Any], now: float) -> list[str]:
    """Components with RESTARTS_IN_WINDOW or more restarts in the last RESTART_WINDOW_S."""
    out = []
    for name, info in sorted(supervision.items()):
        recent = [t for t in info.get("restarts", []) if now - float(t) <= RESTART_WINDOW_S]
        if len(recent) >= RESTARTS_IN_WINDOW:
            out.append(f"{name}: {len(recent)} restarts in {RESTART_WINDOW_S:.0f} s")
    return out


def bridge_problem(status: Mapping[str, Any] | None, now: float) -> str | None:
    """The bridge's own report (ingest.bridge writes it every second)."""
    if status is None:
        return None  # not started yet, or an external bridge
    age = now - float(status.get("at", 0))
    if age > BRIDGE_SILENT_S:
        return f"no report from the bridge for {age:.0f} s"
    idle_s = float(status.get("waiting_since_s", 0))
    if idle_s > BRIDGE_SILENT_S:
        return f"{status.get('waiting')} messages waiting, none forwarded for {idle_s:.0f} s"
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class HealthMonitor:
    def __init__(self, kafka_url: str, run_dir: Path, group: str = WORKER_GROUP) -> None:
        self.kafka_url = kafka_url
        self.group = group
        self.run_dir = run_dir
        self.observed = Observations()
        self._task: asyncio.Task[None] | None = None

    def problems(self, now: float | None = None) -> dict[str, list[str]]:
        now = time.time() if now is None else now
        found: dict[str, list[str]] = {}
        loops = restarting(read_json(self.run_dir / "supervision.json") or {}, now)
        if loops:
            found["restarting"] = loops
        stuck = stalled(self.observed.partitions, now)
        if stuck:
            found["stalled_partitions"] = stuck
        bridge = bridge_problem(read_json(self.run_dir / "bridge.json"), now)
        if bridge:
            found["bridge"] = [bridge]
        return found

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka_url)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka_url, enable_auto_commit=False)
        started = False
        failing: Exception | None = None
        try:
            while True:
                try:
                    if not started:
                        await admin.start()
                        await consumer.start()
                        started = True
                    offsets = await self.offsets(admin, consumer)
                    self.observed.partitions = track(self.observed.partitions, offsets, time.time())
                    failing = None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # keep watching; say so once per failure spell
                    if failing is None:
                        log.warning("health: cannot read the stream offsets: %r", exc)
                    failing = exc
                await asyncio.sleep(INTERVAL_S)
        finally:
            if started:
                await consumer.stop()
                await admin.close()

    async def offsets(
        self,
        admin: AIOKafkaAdminClient,
        consumer: AIOKafkaConsumer,
        topics: tuple[str, ...] = SOURCE_TOPICS,
    ) -> dict[Partition, tuple[int, int]]:
        """(committed, end) offset of each partition of `topics` the group committed on."""
        committed = await admin.list_consumer_group_offsets(self.group)
        wanted = {
            TopicPartition(tp.topic, tp.partition): meta.offset
            for tp, meta in committed.items()
            if tp.topic in topics and meta.offset >= 0
        }
        if not wanted:
            return {}
        ends = await consumer.end_offsets(list(wanted))
        return {(tp.topic, tp.partition): (offset, ends[tp]) for tp, offset in wanted.items()}
