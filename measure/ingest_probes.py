"""What the ingest benchmark measures with: a Kafka counter of what the bridge forwarded, the CPU
of its processes, the bridge being ready."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("sitewatch.bench")

LON, LAT = 113.93, 22.53


@dataclass
class BenchStack:
    data_dir: Path
    supervisor: Any
    env: dict[str, str]
    mqtt_host: str
    mqtt_port: int
    service_user: str
    service_password: str
    kafka_url: str
    database_url: str
    bridge: Any = None

    def start_bridge(self) -> None:
        self.bridge = self.supervisor.start(
            "bridge", [sys.executable, "-m", "ingest.bridge"], env=self.env
        )

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.supervisor.stop(self.bridge)
            self.bridge = None


def checkin_messages(
    engineers: list[str],
    n: int,
    tag: str,
    *,
    start: int = 0,
    sign_with: tuple[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """``n`` valid check-ins with msg_ids ``{tag}-{k}`` (the tag must not contain ``-``),
    SM2-signed with ``sign_with`` = (private, public) hex when given."""
    from gm.algorithms import canonical_bytes, sign_sm2

    ts = time.time() - 60
    out = []
    for k in range(start, start + n):
        e = engineers[k % len(engineers)]
        body = {
            "msg_id": f"{tag}-{k}",
            "engineer_id": e,
            "ts": ts + k * 1e-3,
            "lat": LAT + (k % 100) * 1e-5,
            "lon": LON,
            "acc": 8,
        }
        if sign_with is not None:
            private, public = sign_with
            body["sig"] = sign_sm2(private, canonical_bytes(body), public_key_hex=public)
        out.append((f"sitewatch/checkin/{e}", json.dumps(body).encode()))
    return out


class KafkaCounter:
    """Counts what Kafka holds by reading it (a background thread consuming ``fixes.v1`` and
    ``rejected.v1`` from the beginning): records per msg_id prefix (the part before the last
    ``-``) and dead letters, with the time each count last grew (end offsets would not say
    which run a record belongs to).
    """

    def __init__(self, kafka_url: str) -> None:
        import threading

        self.kafka_url = kafka_url
        self.counts: dict[str, int] = {}
        self.rejected = 0
        self.last_growth = 0.0
        self.first_growth: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kafka-counter", daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("the Kafka counter did not start")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as exc:  # reported to the caller
            self._error = exc
            self._ready.set()

    async def _consume(self) -> None:
        import orjson
        from aiokafka import AIOKafkaConsumer

        from config import topics

        consumer = AIOKafkaConsumer(
            topics.FIXES,
            topics.REJECTED,
            bootstrap_servers=self.kafka_url,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=8 << 20,
        )
        await consumer.start()
        self._ready.set()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=50, max_records=50_000)
                if not batch:
                    continue
                now = time.time()
                with self._lock:
                    for tp, records in batch.items():
                        if tp.topic == topics.REJECTED:
                            self.rejected += len(records)
                            continue
                        for r in records:
                            value = orjson.loads(r.value)  # a record or an envelope of them
                            for d in value if isinstance(value, list) else (value,):
                                tag = d["msg_id"].rsplit("-", 1)[0]
                                self.counts[tag] = self.counts.get(tag, 0) + 1
                                self.first_growth.setdefault(tag, now)
                    self.last_growth = now
        finally:
            await consumer.stop()

    def count(self, tag: str) -> int:
        with self._lock:
            return self.counts.get(tag, 0)

    def wait(self, tag: str, target: int, *, timeout_s: float) -> tuple[float, float]:
        """Until ``target`` records of ``tag`` arrived: (first arrival, last arrival) times."""
        deadline = time.time() + timeout_s
        while True:
            with self._lock:
                got = self.counts.get(tag, 0)
                if got >= target:
                    return self.first_growth[tag], self.last_growth
            if self._error is not None:
                raise self._error
            if time.time() > deadline:
                raise TimeoutError(f"{got} of {target} records of {tag} after {timeout_s} s")
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children (PostgreSQL backends)."""
    total = _cpu_s(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += _cpu_s(int(stat.parent.name))
    return total


def _cpu_snapshot(bs: BenchStack) -> dict[str, float]:
    return {c.name: _tree_cpu_s(c.pid) for c in bs.supervisor.children}


def _cpu_delta(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """CPU microseconds per message of each service process."""
    return {
        f"{name}_cpu_us_per_msg": round((after[name] - before.get(name, 0.0)) / n * 1e6, 1)
        for name in after
        if name in before
    }


def _wait_bridge_ready(
    bs: BenchStack,
    counter: KafkaCounter,
    engineer: str,
    sign_with: tuple[str, str] | None = None,
) -> None:
    from measure.mqtt_publishers import publish_qos1

    tag = f"probe{uuid.uuid4().hex[:6]}"
    deadline = time.time() + 120
    k = 0
    while time.time() < deadline:
        if bs.bridge is not None and bs.bridge.popen.poll() is not None:
            raise RuntimeError(f"the bridge exited; see {bs.bridge.log_path}")
        # Until the bridge has subscribed once, Mosquitto drops what nobody subscribed to.
        probe = checkin_messages([engineer], 1, tag, start=k, sign_with=sign_with)
        k += 1
        publish_qos1(
            bs.mqtt_host,
            bs.mqtt_port,
            bs.service_user,
            bs.service_password,
            probe,
            client_id="bench-probe",
        )
        try:
            counter.wait(tag, 1, timeout_s=2)
            return
        except TimeoutError:
            continue
    raise TimeoutError("the bridge did not forward a probe within 120 s")
