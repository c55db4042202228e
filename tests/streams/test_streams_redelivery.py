"""At-least-once with idempotent sinks: the very Kafka records the gate accepted, produced
again (twice, in another order, as a redelivery after a crash would) change nothing in
PostGIS: no fix, log, reading, transition, alert, history entry or attendance minute more."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from config import topics
from config.settings import Settings
from gm.algorithms import canonical_bytes
from tests.stack_client import StackClient, wait_until
from tests.streams.scenario import (
    alert_ids,
    fix,
    local,
    log,
    make_engineer,
    make_project,
    off_site,
    publish,
    tag,
    telemetry,
    wait_fixes,
    wait_rows,
)
from tests.streams.test_streams_devices import make_device
from wire.records import SupervisionLog, Telemetry, to_dict


async def _records(bootstrap: str, topic: str, key: str) -> tuple[list[bytes], list[bytes]]:
    """The records of `key` in `topic` from the beginning, in offset order (each as its own
    JSON object), and the raw Kafka values that carried them (single records or envelopes
    shared with other keys of the partition, see ingest.gate.envelopes)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        # every topic has kafka_partitions partitions (config.topics); the consumer's own
        # metadata knows only the topics it tracks, so partitions_for_topic would say None
        parts = [TopicPartition(topic, p) for p in range(Settings().kafka_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        records: list[bytes] = []
        carriers: list[bytes] = []
        pending = {tp for tp in parts if end[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, msgs in batch.items():
                for m in msgs:
                    value = orjson.loads(m.value)
                    mine = [
                        d
                        for d in (value if isinstance(value, list) else [value])
                        if key in (d.get("engineer_id"), d.get("device_id"))
                    ]
                    records.extend(orjson.dumps(d) for d in mine)
                    if mine:
                        carriers.append(m.value)
                    if m.offset + 1 >= end[tp]:
                        pending.discard(tp)
        return records, carriers
    finally:
        await consumer.stop()


async def _produce(bootstrap: str, topic: str, key: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, value=v, key=key.encode())
    finally:
        await producer.stop()


def snapshot(sw: StackClient, engineer_id: str, device_id: str) -> dict[str, Any]:
    one = (engineer_id,)
    with sw.api() as api:
        attendance = api.get("/api/attendance", params={"engineer_id": engineer_id}).json()
    return {
        "fixes": sw.sql(
            "SELECT msg_id, ts, local_date, project_ids, region_code, ST_AsText(geom), received_at"
            " FROM fixes WHERE engineer_id = %s ORDER BY msg_id",
            *one,
        ),
        "logs": sw.sql(
            "SELECT msg_id, project_id, local_date FROM supervision_logs WHERE engineer_id = %s"
            " AND project_id NOT LIKE 'NOPE-%%' ORDER BY msg_id",
            *one,
        ),
        "transitions": sw.sql(
            "SELECT id, kind, ts FROM transitions WHERE engineer_id = %s ORDER BY id", *one
        ),
        "alerts": sw.sql(
            "SELECT id, status, region_code, ts, created_at, details::text FROM alerts"
            " WHERE engineer_id = %s OR device_id = %s ORDER BY id",
            engineer_id,
            device_id,
        ),
        "history": sw.sql(
            "SELECT h.alert_id, h.status, count(*) FROM alert_history h JOIN alerts a"
            " ON a.id = h.alert_id WHERE a.engineer_id = %s OR a.device_id = %s"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            engineer_id,
            device_id,
        ),
        "telemetry": sw.sql(
            "SELECT msg_id, ts, metrics::text, received_at FROM telemetry"
            " WHERE device_id = %s AND msg_id NOT LIKE 'sentinel-%%' ORDER BY msg_id",
            device_id,
        ),
        "last_seen": sw.sql("SELECT * FROM device_last_seen WHERE device_id = %s", device_id),
        "attendance": attendance,
    }


def test_redelivered_kafka_records_change_nothing(sw: StackClient) -> None:
    t = tag()
    p, q = f"RD-P-{t}", f"RD-Q-{t}"
    plon, plat = make_project(sw, p)
    qlon, qlat = make_project(sw, q)
    x = f"RD-E-{t}"
    make_engineer(sw, x, region="310104")  # cross-region on both sites
    d = f"RD-D-{t}"
    make_device(sw, d, p, 60)
    olon, olat = off_site(plon, plat)
    publish(
        sw,
        [
            fix(x, f"{t}-a", local(9), plon, plat),
            fix(x, f"{t}-b", local(9, 10), plon, plat),
            fix(x, f"{t}-c", local(9, 11), plon, plat + 0.1),  # impossible travel b -> c
            log(x, f"{t}-log", p, local(9, 20), plon, plat),
            fix(x, f"{t}-d", local(9, 30), plon, plat),
            fix(x, f"{t}-e", local(9, 40), qlon, qlat),  # Q: no log that day
            fix(x, f"{t}-f", local(2, day=3), olon, olat),  # closes 2026-03-02
            telemetry(d, f"{t}-r1", local(10), tilt=3.0),
            telemetry(d, f"{t}-r2", local(10, 1), tilt=9.0),
            telemetry(d, f"{t}-r3", local(10, 2), tilt=2.0),
        ],
    )
    wait_fixes(sw, x, 6)
    wait_rows(sw, "SELECT 1 FROM telemetry WHERE device_id = %s", d, n=3)
    expected = {
        f"cross_region_unfiled:{x}:{p}:2026-03-02",
        f"cross_region_unfiled:{x}:{q}:2026-03-02",
        f"impossible_travel:{x}:travel:{t}-b:{t}-c",
        f"missing_log:{x}:{q}:2026-03-02",
    }
    wait_until(lambda: alert_ids(sw, engineer_id=x) == expected, what="the engineer's alerts")
    wait_until(
        lambda: alert_ids(sw, device_id=d) == {f"sensor_threshold:{d}:tilt:{t}-r2"},
        what="the device's alert",
    )
    before = snapshot(sw, x, d)
    assert len(before["fixes"]) == 6 and len(before["telemetry"]) == 3
    assert before["attendance"] and before["transitions"]

    kafka = sw.endpoints["kafka"]
    fixes, fix_carriers = asyncio.run(_records(kafka, topics.FIXES, x))
    readings, reading_carriers = asyncio.run(_records(kafka, topics.TELEMETRY, d))
    assert len(fixes) == 7 and len(readings) == 3  # six fixes and the log, as the gate sent them
    # redeliver: the Kafka values as the gate sent them (envelopes included), then every
    # record twice on its own, the second time in reverse order
    asyncio.run(_produce(kafka, topics.FIXES, x, fix_carriers + fixes + fixes[::-1]))
    asyncio.run(_produce(kafka, topics.TELEMETRY, d, reading_carriers + readings + readings[::-1]))
    # sentinels behind them in the same partitions, neutral for every rule: once they are
    # stored, the redelivered records before them have been processed
    log_body = {"msg_id": f"sentinel-{t}", "project_id": f"NOPE-{t}", "ts": local(9)}
    log_body |= {"lat": plat, "lon": plon, "text": "sentinel"}
    sentinel_log = SupervisionLog(
        f"sentinel-{t}", x, f"NOPE-{t}", local(9), plon, plat, "sentinel", canonical_bytes(log_body)
    )
    reading_body = {"msg_id": f"sentinel-{t}", "ts": local(9, 59), "metrics": {"tilt": 1.0}}
    sentinel_reading = Telemetry(
        f"sentinel-{t}", d, local(9, 59), {"tilt": 1.0}, None, None, canonical_bytes(reading_body)
    )
    asyncio.run(_produce(kafka, topics.FIXES, x, [orjson.dumps(to_dict(sentinel_log))]))
    asyncio.run(_produce(kafka, topics.TELEMETRY, d, [orjson.dumps(to_dict(sentinel_reading))]))
    wait_rows(sw, "SELECT 1 FROM supervision_logs WHERE msg_id = %s", f"sentinel-{t}", n=1)
    wait_rows(sw, "SELECT 1 FROM telemetry WHERE msg_id = %s", f"sentinel-{t}", n=1)

    assert snapshot(sw, x, d) == before
