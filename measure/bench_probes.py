"""What `sitewatch bench` measures with: CPU and memory of each component and of the machine,
the publishers that offer a load, SM2 signing of the load, the live WebSocket counter."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import multiprocessing as mp
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("sitewatch.bench")


def _stat(pid: int) -> tuple[int, float, float]:
    """(parent pid, CPU seconds of the process, CPU seconds of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (
        int(fields[1]),
        (int(fields[11]) + int(fields[12])) / ticks,
        (int(fields[13]) + int(fields[14])) / ticks,
    )


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_stats(pid: int) -> dict[str, float]:
    """CPU seconds and peak RSS (MiB) of one process and its children, from /proc: the
    bridge verifies SM2 in a process pool and PostgreSQL serves each connection from a backend
    process, so the parent alone would hide most of their work. Children's peaks are added (an
    upper bound of the peak of the whole)."""
    try:
        _, cpu, reaped = _stat(pid)
        total_cpu, rss = cpu + reaped, _peak_rss_mib(pid)
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return {"cpu_s": 0.0, "peak_rss_mib": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid, child_cpu, _ = _stat(int(entry.name))
            if ppid == pid:
                total_cpu += child_cpu
                rss += _peak_rss_mib(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return {"cpu_s": round(total_cpu, 2), "peak_rss_mib": round(rss, 1)}


def calibration_ms(rounds: int = 5) -> float:
    """How fast this machine ran Python when asked: the median time, in ms, of a fixed loop
    of 2,000,000 additions on one core. The 2-core VM's speed moves by two to three times
    within minutes (docs/BENCHMARKS.md): runs are comparable when this is, whatever the load
    average says (it does not see the host's other guests)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        times.append((time.perf_counter() - started) * 1000)
    return round(sorted(times)[len(times) // 2], 1)


def machine_cpu(stat: str | None = None) -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far (all cores, from /proc/stat):
    busy is everything but idle and iowait."""
    if stat is None:
        stat = Path("/proc/stat").read_text()
    fields = [int(x) for x in stat.splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guests are in user)
    busy = total - fields[3] - fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, total / tick


class MachineCpu:
    """Samples `machine_cpu` every `interval_s` in a thread, to tell how busy the machine was
    over any window of the run (the load generators share it with SiteWatch)."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (time, busy s, total s)
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), *machine_cpu()))
            self._stop.wait(self._interval)

    def start(self) -> MachineCpu:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def busy(self, start: float, end: float) -> tuple[float, float]:
        """Busy CPU seconds in [start, end] and the share of all cores they were (0-1)."""
        inside = [x for x in self.samples if start <= x[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        busy = inside[-1][1] - inside[0][1]
        total = inside[-1][2] - inside[0][2]
        return busy, busy / total if total else 0.0


def component_pids(stack: Any) -> dict[str, int]:
    """The process id of every SiteWatch component and embedded service of a running stack."""
    pids = {name: child.pid for name, child in stack.components.items()}
    for child in stack.supervisor.children:
        if child.name in ("postgres", "mosquitto", "kafka"):
            pids[child.name] = child.pid
    return pids


def _publisher(
    host: str,
    port: int,
    user: str,
    password: str,
    engineers: list[str],
    lon: float,
    lat: float,
    rate: float,
    duration_s: float,
    start_at: float,
    out: Any,
    topic_prefix: str = "sitewatch/checkin/",
    signed: frozenset[str] = frozenset(),
    keys: tuple[str, str] | None = None,
) -> None:
    """One publisher process: QoS 1 at `rate` msgs/s; reports how many the broker acknowledged.

    The fixes of the engineers in `signed` are SM2-signed with `keys` (private, public hex).
    Signing costs about as much as verifying, so every message is built (and signed) before
    `start_at`, each with the event time it is due to be sent at: the publishers then offer
    the rate asked of them, and a publisher that falls behind only makes latencies look worse.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from gm.algorithms import canonical_bytes, sign_sm2

    n = len(engineers)

    def message(k: int) -> tuple[str, bytes]:
        e = engineers[k % n]
        body: dict[str, Any] = {
            "msg_id": f"b{uuid.uuid4().hex}",
            "engineer_id": e,
            "ts": round(start_at + k / rate, 6),
            "lon": lon,
            "lat": lat,
            "acc": 5,
        }
        if e in signed and keys is not None:
            body["sig"] = sign_sm2(keys[0], canonical_bytes(body), public_key_hex=keys[1])
        return topic_prefix + e, json.dumps(body).encode()

    total = int(min(rate * duration_s, 1e12))
    if signed:
        prepared = [message(k) for k in range(total)]
        message = prepared.__getitem__  # type: ignore[assignment]

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(user, password)
    client.max_inflight_messages_set(2000)
    acked = [0]
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    client.connect(host, port)
    client.loop_start()
    while time.time() < start_at:
        time.sleep(0.005)
    sent = 0
    t0 = start_at
    while True:
        now = time.time()
        if now - t0 >= duration_s or sent >= total:
            break
        due = min(int((now - t0) * rate) + 1, total)
        burst = 0
        # at most 500 per turn, and never more than 5000 unacknowledged (back-pressure)
        while sent < due and burst < 500 and sent - acked[0] < 5000:
            topic, payload = message(sent)
            client.publish(topic, payload, qos=1)
            sent += 1
            burst += 1
        time.sleep(0.002)
    deadline = time.time() + 30
    while acked[0] < sent and time.time() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    out.put((sent, acked[0]))


def _raw_publisher(
    host: str,
    port: int,
    user: str,
    password: str,
    engineers: list[str],
    lon: float,
    lat: float,
    rate: float,
    duration_s: float,
    start_at: float,
    out: Any,
    signed: frozenset[str] = frozenset(),
    keys: tuple[str, str] | None = None,
) -> None:
    """One publisher process that costs little (measure.mqtt_publishers): every message is
    built (and signed), then encoded as an MQTT PUBLISH packet before `start_at`, each with the
    event time it is due at; from `start_at` the process only writes bytes at `rate` and counts
    PUBACKs (QoS 1, at most 5000 in flight). Reports (sent, acknowledged, its CPU seconds from
    `start_at`): the load generators' own cost, beside SiteWatch's."""
    from gm.algorithms import canonical_bytes, sign_sm2
    from measure.mqtt_publishers import encode_all, publish_qos1

    n = len(engineers)
    total = int(rate * duration_s)
    messages = []
    for k in range(total):
        e = engineers[k % n]
        body: dict[str, Any] = {
            "msg_id": f"b{uuid.uuid4().hex}",
            "engineer_id": e,
            "ts": round(start_at + k / rate, 6),
            "lon": lon,
            "lat": lat,
            "acc": 5,
        }
        if e in signed and keys is not None:
            body["sig"] = sign_sm2(keys[0], canonical_bytes(body), public_key_hex=keys[1])
        messages.append(("sitewatch/checkin/" + e, json.dumps(body).encode()))
    packets = encode_all(messages)
    del messages
    if time.time() > start_at:
        log.warning("a publisher was ready %.1f s after the start", time.time() - start_at)
    cpu = [0.0]
    result = publish_qos1(
        host,
        port,
        user,
        password,
        None,
        encoded=packets,
        client_id=f"bench-{uuid.uuid4().hex[:8]}",
        window=5000,
        chunk=500,
        rate=rate,
        timeout_s=duration_s + 60,
        start_at=start_at,
        on_connected=lambda: cpu.__setitem__(0, time.process_time()),
    )
    out.put((result.sent, result.acked, time.process_time() - cpu[0]))


def offer_load(
    endpoints: dict[str, Any],
    engineers: list[str],
    rate: float,
    duration_s: float,
    processes: int,
    lon: float,
    lat: float,
    signing: Signing | None = None,
    at_start: Callable[[], None] | None = None,
) -> tuple[int, int, float, float]:
    """Offer `rate` fixes/s for `duration_s` from `processes` publishers, which build (and
    sign) their messages first and start together; `at_start` is called then, in a thread.
    Returns (sent, acknowledged, start time, the publishers' CPU seconds from the start)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per = [engineers[i::processes] for i in range(processes)]
    signed = signing.engineers if signing else frozenset()
    # every signed message is signed before the start (processes sign in parallel)
    to_sign = rate * duration_s * (len(signed) / max(len(engineers), 1)) / processes
    cores = max(1, min(processes, os.cpu_count() or 1))
    sign_s = to_sign / signing.signs_per_s * processes / cores if signing else 0.0
    # building, JSON and encoding come on top of signing, and the stack and other work share
    # the cores: a publisher still signing at `start_at` would offer its fixes late
    start_at = time.time() + 3.0 + sign_s * 2.0
    procs = [
        ctx.Process(
            daemon=True,
            target=_raw_publisher,
            args=(
                endpoints["mqtt_host"],
                int(endpoints["mqtt_port"]),
                endpoints["mqtt_username"],
                endpoints["mqtt_password"],
                per[i],
                lon,
                lat,
                rate / processes,
                duration_s,
                start_at,
                out,
                frozenset(e for e in per[i] if e in signed),
                signing.keys if signing else None,
            ),
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    timer = threading.Timer(max(0.0, start_at - time.time()), at_start) if at_start else None
    if timer:
        timer.start()
    try:
        results = [out.get(timeout=start_at - time.time() + duration_s + 90) for _ in procs]
    finally:
        if timer:
            timer.cancel()
    for p in procs:
        p.join(10)
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        start_at,
        sum(r[2] for r in results),
    )


@dataclass(frozen=True)
class Signing:
    """Which bench engineers sign their fixes (SM2), with what key, and how fast one core
    signs (to start the publishers once they have signed)."""

    engineers: frozenset[str]
    keys: tuple[str, str]  # private, public hex
    signs_per_s: float

    @classmethod
    def for_share(cls, engineers: list[str], share: float) -> Signing | None:
        if share <= 0:
            return None
        from gm.algorithms import canonical_bytes, generate_sm2_keypair, sign_sm2

        keys = generate_sm2_keypair()
        body = canonical_bytes({"msg_id": "probe", "ts": 1.0, "lat": 22.5, "lon": 113.9})
        t0, n = time.perf_counter(), 300
        for _ in range(n):
            sign_sm2(keys[0], body, public_key_hex=keys[1])
        rate = n / (time.perf_counter() - t0)
        every = round(1 / share)  # one engineer in `every` signs
        return cls(frozenset(engineers[::every]), keys, rate)


class WsCounter:
    """Counts position messages on /ws/live and records publish-to-delivery latency; counts
    every message by type (`by_type`): each is a frame the API writes to every subscriber."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.count = 0
        self.by_type: collections.Counter[str] = collections.Counter()
        self.latencies_ms: list[float] = []
        self.arrivals: list[float] = []  # when each of `latencies_ms` was received
        self.record = False
        self._task: asyncio.Task[None] | None = None
        self.loop = asyncio.new_event_loop()

    async def _run(self) -> None:
        import websockets

        async with websockets.connect(self.url, max_size=None, max_queue=None) as ws:
            async for raw in ws:
                now = time.time()
                event = orjson.loads(raw)
                self.by_type[str(event.get("type"))] += 1
                if event.get("type") == "position":
                    self.count += 1
                    if self.record:
                        ts = (
                            time.mktime(time.strptime(event["ts"][:19], "%Y-%m-%dT%H:%M:%S"))
                            - time.timezone
                        )
                        frac = (
                            float("0." + event["ts"][20:26])
                            if len(event["ts"]) > 20 and event["ts"][19] == "."
                            else 0.0
                        )
                        self.latencies_ms.append((now - ts - frac) * 1000)
                        self.arrivals.append(now)

    def start(self) -> None:
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._run())
            except Exception as exc:  # closed at the end of the benchmark
                log.debug("ws counter stopped: %s", exc)

        threading.Thread(target=run, daemon=True).start()
        time.sleep(1.0)
