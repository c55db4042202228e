"""`/healthz` tells the truth: a component restarting in a loop, a stream partition that has
records waiting and does not advance, a bridge holding messages it does not forward."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from live_api import health
from live_api.health import PartitionProgress, bridge_problem, restarting, stalled, track
from stack.up import Stack
from tests.api.conftest import tag
from tests.stack_client import StackClient


def test_a_partition_stalls_only_with_records_waiting_and_no_commit() -> None:
    tp = ("fixes.v1", 3)
    p = track({}, {tp: (10, 20)}, 1000.0)
    assert stalled(p, 1000.0 + health.STALL_S - 1) == []
    p = track(p, {tp: (10, 25)}, 1000.0 + health.STALL_S)  # more arrives, nothing committed
    assert stalled(p, 1000.0 + health.STALL_S) == [
        f"fixes.v1[3] at offset 10 of 25 for {health.STALL_S:.0f} s"
    ]
    p = track(p, {tp: (11, 25)}, 1100.0)  # one commit: advancing again
    assert stalled(p, 1100.0 + health.STALL_S - 1) == []
    quiet = track({}, {tp: (30, 30)}, 0.0)
    assert stalled(track(quiet, {tp: (30, 30)}, 10_000.0), 10_000.0) == []
    assert PartitionProgress(1, 2, 0.0) != PartitionProgress(1, 2, 1.0)


def test_restart_loops_and_a_bridge_that_does_not_drain() -> None:
    now = 10_000.0
    three = {"bridge": {"restarts": [now - 10, now - 20, now - 30]}}
    assert restarting(three, now) == ["bridge: 3 restarts in 300 s"]
    assert restarting({"bridge": {"restarts": [now - 400, now - 500, now - 10]}}, now) == []
    assert bridge_problem(None, now) is None
    assert bridge_problem({"at": now - 1, "waiting": 0, "waiting_since_s": 0}, now) is None
    assert "waiting" in str(bridge_problem({"at": now, "waiting": 5, "waiting_since_s": 45}, now))
    assert "no report" in str(bridge_problem({"at": now - 100}, now))


def test_offsets_are_read_from_kafka(running_stack: Stack) -> None:
    kafka = running_stack.env["SITEWATCH_KAFKA_URL"]
    topic, group = f"health-{tag()}", f"health-group-{tag()}"

    async def run() -> dict[tuple[str, int], tuple[int, int]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)  # the broker creates no topic itself
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            for _ in range(3):
                await producer.send_and_wait(topic, b"x", partition=0)
        finally:
            await producer.stop()
        # no auto-commit: stopping would commit the consumer's position (3) over our 1
        committer = AIOKafkaConsumer(
            bootstrap_servers=kafka, group_id=group, enable_auto_commit=False
        )
        await committer.start()
        try:
            committer.assign([TopicPartition(topic, 0)])
            await committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(1, "")})
        finally:
            await committer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        reader = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
        await admin.start()
        await reader.start()
        try:
            monitor = health.HealthMonitor(kafka, Path("/nonexistent"), group)
            return await monitor.offsets(admin, reader, (topic,))
        finally:
            await reader.stop()
            await admin.close()

    assert asyncio.run(run()) == {(topic, 0): (1, 3)}


def test_healthz_reports_a_restart_loop(sw: StackClient, running_stack: Stack) -> None:
    path = running_stack.options.data_dir / "run" / "supervision.json"
    now = time.time()
    path.write_text(json.dumps({"worker": {"restarts": [now - 3, now - 2, now - 1]}}))
    try:
        r = httpx.get(sw.http + "/healthz", timeout=30)
        assert r.status_code == 503
        assert r.json()["components"] == ["worker: 3 restarts in 300 s"]
    finally:
        path.unlink()
    assert httpx.get(sw.http + "/healthz", timeout=30).status_code == 200
