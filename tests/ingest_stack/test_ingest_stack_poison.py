"""Defence in depth behind the codecs: a record the database cannot take (a NUL in its msg_id,
which the codec would have refused) reaches the gate directly, with the stack's real
PostgreSQL and Kafka. It becomes an `internal_error` dead letter and costs only itself: every
other record of the same batch is accepted and forwarded."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from config import topics
from config.settings import Settings
from devices.directory import DirectoryCache
from ingest.gate import Gate, Incoming
from stack.up import Stack
from store.db import async_engine
from tests.ingest_stack.helpers import (
    LAT,
    LON,
    checkin,
    register_engineer,
    tag,
    utcnow,
    wait_fixes,
    wait_rejected,
)
from tests.stack_client import StackClient
from wire.records import Fix, OwnTracksEvent, Record, SupervisionLog, to_json


def fix(engineer_id: str, msg_id: str) -> Fix:
    return Fix(msg_id, engineer_id, time.time() - 30, LON, LAT, 5.0, "position", "checkin")


async def admit(stack: Stack, items: list[Incoming]) -> list[str | None]:
    settings = Settings(
        database_url=stack.env["SITEWATCH_DATABASE_URL"],
        kafka_url=stack.env["SITEWATCH_KAFKA_URL"],
    )
    engine = async_engine(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_url, acks="all")
    await producer.start()
    try:
        key = bytes.fromhex(stack.env["SITEWATCH_PERSONAL_DATA_KEY"])
        gate = Gate(producer, engine, DirectoryCache(engine, key))
        verdicts = await gate.admit(items)
        return [v.reason if v else None for v in verdicts]
    finally:
        await producer.stop()
        await engine.dispose()


def test_a_record_the_database_refuses_costs_only_itself(
    running_stack: Stack, sw: StackClient
) -> None:
    eid = f"PZ-{tag()}"
    register_engineer(sw, eid)
    records = [fix(eid, f"ok-{k}") for k in range(5)]
    records.insert(2, fix(eid, "poison\x00msg"))
    items = [Incoming("http", "/test", b"{}", time.time(), r) for r in records]
    verdicts = asyncio.run(admit(running_stack, items))
    assert verdicts == [None, None, "internal_error", None, None, None]
    assert wait_fixes(sw, eid, {f"ok-{k}" for k in range(5)}) == {f"ok-{k}": 1 for k in range(5)}


async def produce(stack: Stack, topic: str, key: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["SITEWATCH_KAFKA_URL"], acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def test_the_worker_sets_a_poison_record_aside_and_goes_on(
    running_stack: Stack, sw: StackClient
) -> None:
    """Records that passed no gate (as a bug in it would let through) in one envelope with
    valid fixes of the same engineer, hence the same partition: the valid ones are stored,
    each poison one is a dead letter with its whole record, and the partition keeps moving."""
    eid = f"PW-{tag()}"
    register_engineer(sw, eid)
    now = time.time() - 60
    poison: list[Record] = [
        fix(eid, "nul\x00id"),
        OwnTracksEvent(f"ot:{eid}:p:lwt:1", eid, now, "lwt", {"x": "\x00"}),
        SupervisionLog("log-nul", eid, "P-none", now, LON, LAT, "text\x00", b"{}"),
    ]
    valid = [fix(eid, f"w-{k}") for k in range(4)]
    envelope = [valid[0], poison[0], valid[1], poison[1], valid[2], poison[2]]
    values = [b"[" + b",".join(to_json(r, received_at=now) for r in envelope) + b"]"]
    values.append(to_json(valid[3], received_at=now))  # after the poison, same partition
    since = utcnow()
    asyncio.run(produce(running_stack, topics.FIXES, eid, values))
    assert wait_fixes(sw, eid, {f"w-{k}" for k in range(4)}) == {f"w-{k}": 1 for k in range(4)}
    letters = wait_rejected(
        sw, since, lambda r: r["source"] == "worker" and eid in r["excerpt"], count=3
    )
    assert {r["reason"] for r in letters} == {"internal_error"}
    assert all("engineer_records failed" in r["message"] for r in letters)


def test_a_nul_msg_id_over_mqtt_is_rejected_and_the_bridge_goes_on(
    running_stack: Stack, sw: StackClient
) -> None:
    """The case that put the bridge in a crash loop: a check-in whose msg_id holds U+0000,
    then a valid fix of another engineer. The first is `bad_text`, the second is stored, and
    the bridge is the same process."""
    bad, good = f"NB-{tag()}", f"NG-{tag()}"
    bad_password, good_password = register_engineer(sw, bad), register_engineer(sw, good)
    bridge_pid = running_stack.components["bridge"].pid
    since = utcnow()
    sw.publish(
        f"sitewatch/checkin/{bad}",
        checkin(bad, "nul\u0000id"),
        username=bad,
        password=bad_password,
    )
    sw.publish(
        f"sitewatch/checkin/{good}", checkin(good, "ok-1"), username=good, password=good_password
    )
    assert wait_fixes(sw, good, {"ok-1"}) == {"ok-1": 1}
    rows = wait_rejected(sw, since, lambda r: r["topic"] == f"sitewatch/checkin/{bad}")
    assert rows[0]["reason"] == "bad_text"
    assert running_stack.components["bridge"].pid == bridge_pid
