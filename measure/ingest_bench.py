"""Throughput of the MQTT -> Kafka bridge: QoS 1 messages per second persisted to Kafka.

``bridge_msgs_per_s()`` starts a private PostGIS, Mosquitto and Kafka (stack.services), seeds
engineers with SQL, runs the real bridge (``python -m ingest.bridge``) as a child process and
measures two figures:

* ``live``: several publisher processes publish valid check-ins at QoS 1 while the bridge
  runs; the figure is messages / (time from the first publish until the last of them is
  read back from ``fixes.v1``). Publishers, Mosquitto, Kafka, PostgreSQL and the
  bridge share the machine's cores, as in production on one box.
* ``backlog``: the bridge is stopped, the messages are published (Mosquitto queues them in the
  bridge's persistent session), then the bridge is started again; the figure is messages /
  (time from the first record reaching Kafka until the last). This is the bridge's own
  ceiling with the broker and Kafka, without publishers competing for the CPU.

``bridge_msgs_per_s`` in the returned dict is the live figure. Every message must be accepted
(nothing in ``rejected.v1``), or the run raises.

Command line: ``python -m measure.ingest_bench [--n N] [--publishers P] [--mode live|backlog|both]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from measure.ingest_probes import (
    BenchStack,
    KafkaCounter,
    _cpu_delta,
    _cpu_snapshot,
    _wait_bridge_ready,
    checkin_messages,
)

log = logging.getLogger("sitewatch.bench")

LON, LAT = 113.93, 22.53


def start_bench_stack(data_dir: Path) -> BenchStack:
    from devices.broker import BrokerAdmin
    from stack import kafka_broker, mosquitto_broker, postgres, topic_setup
    from stack.processes import Supervisor

    sup = Supervisor(data_dir / "logs")
    try:
        pg = postgres.start_postgres(sup, data_dir)
        postgres.migrated(pg)
        mq = mosquitto_broker.start_mosquitto(sup, data_dir)
        admin = BrokerAdmin("127.0.0.1", mq.port, "sitewatch-admin", mq.admin_password)
        bridge_password = secrets.token_urlsafe(18)
        service_password = secrets.token_urlsafe(18)
        admin.ensure_bridge("sitewatch-bridge", bridge_password)
        admin.ensure_service("sitewatch-service", service_password)
        kafka = kafka_broker.start_kafka(sup, data_dir)
        topic_setup.ensure_topics_sync(kafka.url, 8)
    except BaseException:
        sup.stop_all()
        raise
    env = {
        "SITEWATCH_DATA_DIR": str(data_dir),
        "SITEWATCH_DATABASE_URL": pg.url,
        "SITEWATCH_KAFKA_URL": kafka.url,
        "SITEWATCH_MQTT_URL": f"mqtt://sitewatch-service:{service_password}@127.0.0.1:{mq.port}",
        "SITEWATCH_MQTT_BRIDGE_PASSWORD": bridge_password,
        "SITEWATCH_MQTT_ADMIN_PASSWORD": mq.admin_password,
        "SITEWATCH_PERSONAL_DATA_KEY": secrets.token_hex(16),
    }
    return BenchStack(
        data_dir,
        sup,
        env,
        "127.0.0.1",
        mq.port,
        "sitewatch-service",
        service_password,
        kafka.url,
        pg.url,
    )


def seed_engineers(database_url: str, ids: list[str], sm2_public_key: str | None = None) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY engineers (id, name, registered_region, cert_status, ce_hours, sm2_public_key) "
            "FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row((i, "bench", "440305", "valid", 0.0, sm2_public_key))


def _publisher_main(
    host: str,
    port: int,
    user: str,
    password: str,
    messages: list[tuple[str, bytes]],
    start_at: float,
    out: Any,
    client: str = "raw",
) -> None:
    from measure.mqtt_publishers import publish_qos1

    if client == "paho":
        out.put(_paho_publish(host, port, user, password, messages, start_at))
        return
    res = publish_qos1(
        host,
        port,
        user,
        password,
        messages,
        client_id=f"bench-pub-{uuid.uuid4().hex[:8]}",
        start_at=start_at,
        timeout_s=600,
    )
    out.put((res.sent, res.acked, res.seconds))


def _paho_publish(
    host: str,
    port: int,
    user: str,
    password: str,
    messages: list[tuple[str, bytes]],
    start_at: float,
) -> tuple[int, int, float]:
    """The same with paho-mqtt (about 150 us of CPU per QoS 1 message)."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Event()
    acked = [0]

    def on_publish(*_a: Any) -> None:
        acked[0] += 1
        if acked[0] >= len(messages):
            done.set()

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{uuid.uuid4().hex[:8]}"
    )
    client.username_pw_set(user, password)
    client.max_inflight_messages_set(5000)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    done.wait(600)
    seconds = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return len(messages), acked[0], seconds


def publish_parallel(
    bs: BenchStack,
    messages: list[tuple[str, bytes]],
    publishers: int,
    *,
    start_in: float = 1.0,
    client: str = "raw",
) -> tuple[float, list[Any], Any]:
    """Start publisher processes that all begin at the returned wall-clock time."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + start_in
    procs = []
    for p in range(publishers):
        part = messages[p::publishers]
        proc = ctx.Process(
            target=_publisher_main,
            args=(
                bs.mqtt_host,
                bs.mqtt_port,
                bs.service_user,
                bs.service_password,
                part,
                start_at,
                out,
                client,
            ),
            daemon=True,
        )
        proc.start()
        procs.append(proc)
    return start_at, procs, out


def collect(procs: list[Any], out: Any, timeout_s: float = 600) -> tuple[int, int, float]:
    sent = acked = 0
    longest = 0.0
    for _ in procs:
        s, a, secs = out.get(timeout=timeout_s)
        sent, acked, longest = sent + s, acked + a, max(longest, secs)
    for p in procs:
        p.join(10)
    return sent, acked, longest


def bridge_msgs_per_s(
    n: int = 60_000,
    publishers: int = 2,
    *,
    engineers: int = 500,
    mode: str = "both",
    data_dir: Path | None = None,
    client: str = "raw",
) -> dict[str, Any]:
    """Measure the bridge (see the module docstring). Returns a dict of figures, with
    ``bridge_msgs_per_s`` = the live figure (or the backlog one when ``mode='backlog'``).
    ``client='paho'`` publishes with paho-mqtt instead of measure.mqtt_publishers (then the publishers
    need more CPU than the broker and the bridge together on a 2-core machine)."""
    own_dir = data_dir is None
    data = Path(tempfile.mkdtemp(prefix="sitewatch-bridge-bench-")) if own_dir else data_dir
    assert data is not None
    figures: dict[str, Any] = {
        "n": n,
        "publishers": publishers,
        "publisher_client": client,
        "engineers": engineers,
        "load_avg_1m": os.getloadavg()[0],
    }
    bs = start_bench_stack(data)
    counter: KafkaCounter | None = None
    ok = False
    try:
        ids = [f"BENCH-{k:05d}" for k in range(engineers)]
        seed_engineers(bs.database_url, ids)
        bs.start_bridge()
        counter = KafkaCounter(bs.kafka_url)
        _wait_bridge_ready(bs, counter, ids[0])

        if mode in ("live", "both"):
            tag = f"live{uuid.uuid4().hex[:6]}"
            msgs = checkin_messages(ids, n, tag)
            rejected0 = counter.rejected
            cpu0 = _cpu_snapshot(bs)
            start_at, procs, out = publish_parallel(bs, msgs, publishers, client=client)
            _first, done = counter.wait(tag, n, timeout_s=600)
            sent, acked, pub_s = collect(procs, out)
            cpu1 = _cpu_snapshot(bs)
            rejected = counter.rejected - rejected0
            if acked != n or rejected:
                raise RuntimeError(f"live run: {acked} of {n} acknowledged, {rejected} rejected")
            figures["live_msgs_per_s"] = round(n / (done - start_at), 1)
            figures["live_publish_acked_per_s"] = round(n / pub_s, 1) if pub_s else None
            figures.update({f"live_{k}": v for k, v in _cpu_delta(cpu0, cpu1, n).items()})

        if mode in ("backlog", "both"):
            bs.stop_bridge()
            tag = f"backlog{uuid.uuid4().hex[:6]}"
            msgs = checkin_messages(ids, n, tag)
            _start_at, procs, out = publish_parallel(
                bs, msgs, publishers, start_in=0.5, client=client
            )
            sent, acked, _pub_s = collect(procs, out)
            if acked != n:
                raise RuntimeError(f"backlog run: only {acked} of {n} acknowledged")
            rejected0 = counter.rejected
            started = time.time()
            bs.start_bridge()
            while counter.count(tag) == 0 and time.time() - started < 120:
                time.sleep(0.005)
            cpu0 = _cpu_snapshot(bs)
            first, done = counter.wait(tag, n, timeout_s=600)
            cpu1 = _cpu_snapshot(bs)
            rejected = counter.rejected - rejected0
            if rejected:
                raise RuntimeError(f"backlog run: {rejected} rejected")
            figures["backlog_msgs_per_s"] = round(n / (done - first), 1)
            figures["backlog_including_start_s"] = round(done - started, 2)
            figures.update({f"backlog_{k}": v for k, v in _cpu_delta(cpu0, cpu1, n).items()})
        figures["bridge_msgs_per_s"] = figures.get("live_msgs_per_s") or figures.get(
            "backlog_msgs_per_s"
        )
        figures["load_avg_1m_after"] = os.getloadavg()[0]
        ok = True
        return figures
    finally:
        if counter is not None:
            counter.close()
        bs.supervisor.stop_all()
        if own_dir and ok:
            shutil.rmtree(data, ignore_errors=True)
        elif own_dir:
            log.error("bridge benchmark failed; logs kept in %s", data / "logs")


def bridge_signed_msgs_per_s(
    n: int = 6000,
    *,
    sm2_workers: int | None = None,
    engineers: int = 50,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Rate of SM2-signed check-ins (every message verified) through the bridge: published
    at once by one fast publisher, timed until the last is read back from Kafka. The bridge's
    SM2 verification runs in a process pool of ``sm2_workers`` (None: default, 0: inline)."""
    from gm.algorithms import generate_sm2_keypair

    own_dir = data_dir is None
    data = Path(tempfile.mkdtemp(prefix="sitewatch-bridge-bench-")) if own_dir else data_dir
    assert data is not None
    keys = generate_sm2_keypair()
    bs = start_bench_stack(data)
    if sm2_workers is not None:
        bs.env["SITEWATCH_BRIDGE_SM2_WORKERS"] = str(sm2_workers)
    counter: KafkaCounter | None = None
    try:
        ids = [f"SIGN-{k:04d}" for k in range(engineers)]
        seed_engineers(bs.database_url, ids, sm2_public_key=keys[1])
        bs.start_bridge()
        counter = KafkaCounter(bs.kafka_url)
        # A signed probe: the bridge starts its SM2 workers with the first signature; give
        # them time to be ready, so that the figure is the steady state.
        _wait_bridge_ready(bs, counter, ids[0], sign_with=keys)
        time.sleep(5)
        tag = f"signed{uuid.uuid4().hex[:6]}"
        msgs = checkin_messages(ids, n, tag, sign_with=keys)
        # The publisher is far faster than SM2 verification: this measures the bridge.
        start_at, procs, out = publish_parallel(bs, msgs, 1, start_in=0.2)
        _first, done = counter.wait(tag, n, timeout_s=600)
        _sent, acked, _secs = collect(procs, out)
        if acked != n or counter.rejected:
            raise RuntimeError(f"{acked} of {n} acknowledged, {counter.rejected} rejected")
        return {
            "signed_n": n,
            "sm2_workers": "default" if sm2_workers is None else sm2_workers,
            "signed_msgs_per_s": round(n / (done - start_at), 1),
        }
    finally:
        if counter is not None:
            counter.close()
        bs.supervisor.stop_all()
        if own_dir:
            shutil.rmtree(data, ignore_errors=True)


def sm2_verifies_per_s(n: int = 4000) -> dict[str, float]:
    """SM2 verifications per second: inline (one core) and through the pool (1, 2 workers)."""
    from ingest.sm2pool import pool_rate

    return {
        "sm2_inline_per_s": round(pool_rate(n, 0), 1),
        "sm2_pool1_per_s": round(pool_rate(n, 1), 1),
        "sm2_pool2_per_s": round(pool_rate(n, 2), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m measure.ingest_bench")
    parser.add_argument("--n", type=int, default=60_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--engineers", type=int, default=500)
    parser.add_argument("--mode", choices=("live", "backlog", "both", "signed"), default="both")
    parser.add_argument("--sm2-workers", type=int, default=None)
    parser.add_argument("--client", choices=("raw", "paho"), default="raw")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.mode == "signed":
        figures = {**sm2_verifies_per_s(), **bridge_signed_msgs_per_s(sm2_workers=args.sm2_workers)}
        print(json.dumps(figures, indent=2))
        return 0
    figures = bridge_msgs_per_s(
        args.n, args.publishers, engineers=args.engineers, mode=args.mode, client=args.client
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
