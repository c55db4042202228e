"""Kafka goes away under a bridge whose producer is not idempotent: the bridge must not
acknowledge what Kafka did not confirm, must exit loudly (status 1, so `sitewatch up` restarts
it), and once Kafka is back a new bridge forwards everything the broker accepted meanwhile.

Runs on private services (PostgreSQL, Mosquitto, Kafka) because it kills the Kafka broker."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from measure.ingest_bench import (
    BenchStack,
    KafkaCounter,
    checkin_messages,
    seed_engineers,
    start_bench_stack,
)
from measure.mqtt_publishers import publish_qos1
from stack import kafka_broker, topic_setup

ENGINEER = "KD-E-1"


@pytest.fixture(scope="module")
def private_stack() -> Iterator[BenchStack]:
    data_dir = Path(tempfile.mkdtemp(prefix="sitewatch-kafka-down-"))
    bs = start_bench_stack(data_dir)
    bs.env["SITEWATCH_BRIDGE_KAFKA_TIMEOUT_MS"] = "4000"
    # An idempotent producer never gives a batch up (aiokafka retries it until Kafka is back:
    # tests/fault/test_kafka_faults.py); the timeout and the exit are the non-idempotent path.
    bs.env["SITEWATCH_KAFKA_IDEMPOTENCE"] = "false"
    try:
        seed_engineers(bs.database_url, [ENGINEER])
        yield bs
    finally:
        bs.supervisor.stop_all()
        if os.environ.get("SITEWATCH_KEEP_TEST_DATA") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


def publish(bs: BenchStack, tag: str, n: int) -> None:
    res = publish_qos1(
        bs.mqtt_host,
        bs.mqtt_port,
        bs.service_user,
        bs.service_password,
        checkin_messages([ENGINEER], n, tag),
        client_id=f"kd-{uuid.uuid4().hex[:6]}",
    )
    assert res.acked == n


def wait_forwarding(bs: BenchStack, counter: KafkaCounter) -> None:
    tag = f"ready{uuid.uuid4().hex[:6]}"
    deadline = time.time() + 120
    while time.time() < deadline:
        assert bs.bridge is not None and bs.bridge.popen.poll() is None, "bridge exited"
        publish(bs, tag, 1)  # until the bridge subscribed, Mosquitto drops these
        try:
            counter.wait(tag, 1, timeout_s=2)
            return
        except TimeoutError:
            continue
    raise TimeoutError("the bridge never forwarded")


def test_bridge_exits_without_acking_when_kafka_fails(private_stack: BenchStack) -> None:
    bs = private_stack
    kafka = next(c for c in bs.supervisor.children if c.name == "kafka")
    port = int(bs.kafka_url.rsplit(":", 1)[1])
    bs.start_bridge()
    counter = KafkaCounter(bs.kafka_url)
    try:
        wait_forwarding(bs, counter)
        publish(bs, "before", 50)
        counter.wait("before", 50, timeout_s=60)
    finally:
        counter.close()

    os.kill(kafka.pid, signal.SIGKILL)
    kafka.popen.wait(10)
    bs.supervisor.children.remove(kafka)
    publish(bs, "during", 200)  # Mosquitto accepts these; Kafka cannot take them

    bridge = bs.bridge
    assert bridge is not None
    code = bridge.popen.wait(90)
    assert code == 1, f"the bridge should exit with status 1, not {code}"
    log_text = bridge.log_path.read_text(errors="replace")
    assert "nothing more is acknowledged" in log_text and "exiting with status 1" in log_text
    bs.supervisor.children.remove(bridge)
    bs.bridge = None

    # Kafka back on the same data, a new bridge: what Kafka confirmed before the kill is
    # still there, and every message published meanwhile arrives
    kafka_broker.start_kafka(bs.supervisor, bs.data_dir, port)
    topic_setup.ensure_topics_sync(bs.kafka_url, 8)
    counter = KafkaCounter(bs.kafka_url)
    try:
        bs.start_bridge()
        counter.wait("during", 200, timeout_s=120)
        assert counter.count("during") >= 200
        assert counter.count("before") >= 50  # kept across the kill
        assert counter.rejected == 0
    finally:
        counter.close()
        bs.stop_bridge()
