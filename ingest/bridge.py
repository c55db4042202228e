"""The MQTT -> Kafka bridge.

paho-mqtt 2 (VERSION2 callbacks, MQTT 5) with a fixed client id, a persistent session
(``clean_start=False``, session expiry 7 days), QoS 1 subscriptions and manual
acknowledgement: a message is acknowledged to Mosquitto, in arrival order, only once Kafka
holds it or its dead letter (``acks=all``). Restarting the bridge, or killing it, loses nothing
the broker accepted: what was not acknowledged is redelivered.

Hot path (ingest.mqtt_async): paho runs on the asyncio loop with buffered reads; arrivals are
taken in batches and pipelined (up to ``MAX_BATCHES_IN_FLIGHT`` at once) through the stages of
ingest.gate: decode and check (SM2 in a process pool) may overlap between batches; the replay
check and the hand-over to Kafka run in arrival order; Kafka's confirmation is awaited
concurrently; acknowledgements are sent in arrival order, each batch's PUBACKs as one write.

Failure: if Kafka does not confirm a batch (broker down, timeout) or a stage raises, the bridge
acknowledges nothing more, logs the error and exits with status 1; ``sitewatch up`` restarts
it and the broker redelivers everything unacknowledged. A lost MQTT connection is
re-established in-process; deliveries of the old connection are not acknowledged (their packet
ids mean nothing on the new one) and come again.

Run with ``python -m ingest.bridge`` (settings from SITEWATCH_* environment variables).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from config import gc_tuning
from config.settings import Settings
from devices.broker import INGEST_TOPICS, RECOVERED_PREFIX
from devices.directory import DirectoryCache
from ingest.counters import Counters
from ingest.gate import Gate, Incoming
from ingest.mqtt_async import AsyncMqttClient
from ingest.sm2pool import Sm2Pool
from store.db import async_engine
from wire.codecs import decode_mqtt
from wire.records import Reason, Record, Rejected

log = logging.getLogger("sitewatch.bridge")

MAX_BATCH = 4000
# A batch starts once BATCH_FILL messages arrived or the oldest waited BATCH_LINGER_S: every
# batch pays fixed costs (two PostgreSQL round trips, a Kafka request), and the worker's cost is
# per Kafka record, so a handful of messages per batch (what arrives between two events at
# 1,000/s) costs the bridge about 0.8 ms of CPU per message instead of 0.05 ms, so 100 ms
# rather than 25 (measured with the earlier broker; a shorter linger lowers latency).
BATCH_FILL = 500
BATCH_LINGER_S = 0.1
# ... but only at BUSY_RATE messages/s or more (a 100 ms batch would be half full): below it a
# batch starts once its oldest waited IDLE_LINGER_S. At most 1/IDLE_LINGER_S batches a second
# then cost their fixed part (~0.1 ms of CPU per message more at 2,000/s, docs/BENCHMARKS.md)
# while the machine has room, and a fix does not wait out the linger for nothing.
BUSY_RATE = BATCH_FILL / 2 / BATCH_LINGER_S
IDLE_LINGER_S = 0.01
MAX_BATCHES_IN_FLIGHT = 4
HIGH_WATER = 2 * MAX_BATCH  # arrived but not yet in a batch: stop reading MQTT above this
RECEIVE_MAXIMUM = 65_000  # unacknowledged QoS 1 messages Mosquitto may send us (MQTT 5)
SESSION_EXPIRY_S = 7 * 24 * 3600
# How long Kafka may take to confirm a batch before the bridge gives up (and exits).
STATS_S = 10.0
MAX_RETAINED_TOPICS = 100_000  # per sweep: a flood of topics cannot grow the bridge either


@dataclass(slots=True)
class Arrived:
    mid: int
    qos: int
    dup: bool
    topic: str
    payload: bytes
    received_at: float
    connection: int


def mqtt_target(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 1883


@dataclass
class _Batch:
    """Ordering of one batch relative to the one before it."""

    prev: _Batch | None
    sent: asyncio.Event = field(default_factory=asyncio.Event)
    acked: asyncio.Event = field(default_factory=asyncio.Event)


class BridgeFailed(RuntimeError):
    """Kafka or PostgreSQL did not do its part: nothing more is acknowledged."""


class Bridge:
    def __init__(self, settings: Settings, *, sm2_workers: int | None = None) -> None:
        self.settings = settings
        self.arrived: list[Arrived] = []
        self.wakeup = asyncio.Event()
        self.stopping = asyncio.Event()
        self.fatal: BaseException | None = None
        self.client: AsyncMqttClient | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.background: set[asyncio.Task[None]] = set()
        self._reporter: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        if sm2_workers is None:
            sm2_workers = settings.bridge_sm2_workers  # 0: verify on the event loop
        self.sm2_workers = sm2_workers
        self.forwarded = 0
        self.batches = 0
        self.stage_s: dict[str, float] = {}  # seconds spent per pipeline stage (summed)
        self.retained_topics: set[str] = set()  # OwnTracks topics seen since the last sweep
        self.taken: deque[tuple[float, int]] = deque()  # (when, size) of the last second's batches

    # -- MQTT ---------------------------------------------------------------------------------

    def _client(self, loop: asyncio.AbstractEventLoop) -> AsyncMqttClient:
        client = AsyncMqttClient(
            loop,
            client_id=self.settings.bridge_client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.username_pw_set(
            self.settings.mqtt_bridge_username,
            self.settings.mqtt_bridge_password.get_secret_value(),
        )
        client.connect_timeout = 10.0

        def on_connect(
            c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, reason: object, _p: object
        ) -> None:
            if getattr(reason, "is_failure", False):
                log.error("MQTT connection refused: %s", reason)
                return
            log.info(
                "connected to MQTT as %s (session present: %s)",
                self.settings.bridge_client_id,
                flags.session_present,
            )
            # retainHandling 2: never the retained copies. The persistent session already holds
            # every message published while the bridge was away; retained copies would come
            # again at every (re)subscription and each be one more `replay` rejection.
            # noLocal: not the empty retained messages the bridge publishes itself (below).
            options = SubscribeOptions(
                qos=1, noLocal=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
            )
            c.subscribe([(t, options) for t in (*INGEST_TOPICS, RECOVERED_PREFIX + "#")])

        arrived = self.arrived
        wakeup = self.wakeup
        now = time.time

        retained = self.retained_topics

        def on_publish_raw(mid: int, qos: int, dup: bool, topic: bytes, payload: bytes) -> None:
            try:
                name = topic.decode("utf-8")
            except UnicodeDecodeError:
                name = topic.decode("utf-8", "replace")  # rejected as unknown_topic
            if name.startswith(RECOVERED_PREFIX):
                # Mosquitto's journal after a crash: what it may have lost, so what the bridge
                # may have forwarded already; a replay of it is a redelivery, not a rejection.
                name = name[len(RECOVERED_PREFIX) :]
                dup = True
            elif name.startswith("owntracks/") and len(retained) < MAX_RETAINED_TOPICS:
                retained.add(name)
            arrived.append(Arrived(mid, qos, dup, name, payload, now(), client.connection_id))
            if not wakeup.is_set():
                wakeup.set()
            if len(arrived) >= HIGH_WATER:
                client.pause_reading()  # let the pipeline catch up; Mosquitto keeps the rest

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            # paho's own path: QoS 2 deliveries, which QoS 1 subscriptions never get
            topic: bytes = msg._topic  # noqa: SLF001
            on_publish_raw(msg.mid, msg.qos, bool(msg.dup), topic, bytes(msg.payload))

        def on_disconnect(
            _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
        ) -> None:
            if not self.stopping.is_set():
                log.warning("MQTT disconnected (%s); reconnecting", reason)

        client.on_connect = on_connect
        client.on_message = on_message
        client.on_publish_raw = on_publish_raw
        client.on_disconnect = on_disconnect
        return client

    # -- run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        settings = self.settings
        pool = Sm2Pool(self.sm2_workers)
        pool.start()
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_url,
            acks="all",
            linger_ms=2,
            max_batch_size=1 << 20,
            request_timeout_ms=settings.bridge_kafka_timeout_ms,
            enable_idempotence=settings.kafka_idempotence,
        )
        await producer.start()
        # the gate retries (store.retry); its statements are index probes whatever the plan
        engine = async_engine(settings, pre_ping=False, plans="generic")
        key = bytes.fromhex(settings.personal_data_key.get_secret_value())
        gate = Gate(
            producer,
            engine,
            DirectoryCache(engine, key),
            sm2_pool=pool,
            counters=Counters("mqtt"),
        )
        await gate.warm_up(MAX_BATCHES_IN_FLIGHT)
        client = self.client = self._client(loop)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        host, port = mqtt_target(settings.mqtt_url)
        try:
            client.start(host, port, clean_start=False, properties=props, keepalive=30)
            await self._pump(gate, client)
        finally:
            await self._drain()
            await client.close()
            if self.fatal is None:
                await gate.counters.flush(engine)
            try:  # with Kafka gone, stopping the producer would wait for it
                await asyncio.wait_for(producer.stop(), 5 if self.fatal else 60)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - exiting anyway
                log.warning("Kafka producer did not stop cleanly: %r", exc)
            await engine.dispose()
            pool.close()
        if self.fatal is not None:
            raise BridgeFailed(f"stopped without acknowledging: {self.fatal!r}") from self.fatal

    async def _drain(self) -> None:
        """On a clean stop let in-flight batches finish (they acknowledge) and their accepted
        ids be remembered; then stop the helpers."""
        if self.tasks and self.fatal is None:
            timeout = self.settings.bridge_kafka_timeout_ms / 1000 + 5
            await asyncio.wait(self.tasks, timeout=timeout)
        helpers = (self._reporter, self._sweeper)
        writes = [t for t in self.background if t not in helpers and not t.done()]
        if writes and self.fatal is None:
            await asyncio.wait(writes, timeout=10)
        for task in list(self.tasks) + list(self.background):
            if not task.done():
                task.cancel()
        await asyncio.gather(*self.tasks, *self.background, return_exceptions=True)

    async def _pump(self, gate: Gate, client: AsyncMqttClient) -> None:
        log.info("bridge running (pid %d)", os.getpid())
        self._reporter = self._background(self._report(gate))
        self._sweeper = self._background(self._sweep_retained())
        slots = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
        prev: _Batch | None = None
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                if not self.arrived:
                    self.wakeup.clear()
                    wake = asyncio.ensure_future(self.wakeup.wait())
                    await asyncio.wait({wake, stop}, return_when=asyncio.FIRST_COMPLETED)
                    wake.cancel()
                    continue
                await slots.acquire()
                await self._linger()
                if self.stopping.is_set():
                    slots.release()
                    break
                batch = self.arrived[:MAX_BATCH]
                del self.arrived[:MAX_BATCH]
                self.taken.append((time.monotonic(), len(batch)))
                if client.paused and len(self.arrived) < HIGH_WATER // 2:
                    client.resume_reading()
                state = _Batch(prev)
                prev = state
                task = asyncio.create_task(self._process(gate, client, batch, state))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                task.add_done_callback(lambda _t: slots.release())
        finally:
            stop.cancel()

    async def _linger(self) -> None:
        """Let the next batch fill: BATCH_LINGER_S while messages come in at BUSY_RATE or more
        (the last second's), IDLE_LINGER_S below that."""
        tick = time.monotonic()
        while self.taken and self.taken[0][0] < tick - 1.0:
            self.taken.popleft()
        rate = sum(n for _, n in self.taken)
        limit = BATCH_LINGER_S if rate >= BUSY_RATE else IDLE_LINGER_S
        if len(self.arrived) < BATCH_FILL:
            linger = limit - (time.time() - self.arrived[0].received_at)
            if linger > 0:
                await asyncio.sleep(linger)

    async def _sweep_retained(self) -> None:
        """OwnTracks publishes with the retain flag: the broker would keep the last message of
        every topic a phone ever used, whatever its size, for good. Every bridge_retained_sweep_s the
        bridge clears the retained copies of the topics it received (an empty retained
        message), so the broker's store stays bounded by the topics of one interval."""
        while True:
            await asyncio.sleep(self.settings.bridge_retained_sweep_s)
            client = self.client
            topics_seen = list(self.retained_topics)  # the receive callback holds this set
            self.retained_topics.clear()
            if client is None or not topics_seen:
                continue
            for topic in topics_seen:
                client.publish(topic, b"", qos=0, retain=True)
            log.info("cleared the retained copies of %d OwnTracks topics", len(topics_seen))

    async def _report(self, gate: Gate) -> None:
        """Every second: write the outcome counters (ingest.counters); every STATS_S seconds
        while messages flow: a progress line."""
        last = -1
        last_log = time.monotonic()
        status = self.settings.data_dir / "run" / "bridge.json"
        progress = (self.forwarded, time.time())  # forwarded count, when it last changed
        while True:
            await asyncio.sleep(1.0)
            if gate.counters.due():
                await gate.counters.flush(gate.engine)
            now = time.time()
            waiting = len(self.arrived) + len(self.tasks)
            if self.forwarded != progress[0] or not waiting:
                progress = (self.forwarded, now)
            write_status(
                status,
                {
                    "at": now,
                    "waiting": waiting,
                    "forwarded": self.forwarded,
                    "waiting_since_s": round(now - progress[1], 1),
                },
            )
            if self.forwarded != last and time.monotonic() - last_log >= STATS_S:
                last_log = time.monotonic()
                log.info(
                    "forwarded %d messages in %d batches (%s); %d waiting, %d batches in "
                    "flight; stage seconds %s",
                    self.forwarded,
                    self.batches,
                    ", ".join(f"{k} {v}" for k, v in sorted(gate.counts.items())),
                    len(self.arrived),
                    len(self.tasks),
                    " ".join(f"{k}={v:.2f}" for k, v in self.stage_s.items()),
                )
                last = self.forwarded

    def _fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
            log.critical("bridge failing, nothing more is acknowledged: %r", exc, exc_info=exc)
        self.stopping.set()

    async def _process(
        self, gate: Gate, client: AsyncMqttClient, batch: list[Arrived], state: _Batch
    ) -> None:
        clock = time.perf_counter
        stage = self.stage_s
        try:
            t0 = clock()
            items = [
                Incoming("mqtt", a.topic, a.payload, a.received_at, decode(a), a.mid, a.dup)
                for a in batch
            ]
            t1 = clock()
            verdicts, known = await gate.screen(items)  # may overlap with other batches
            t2 = clock()
            if state.prev is not None:
                await state.prev.sent.wait()
            if self.fatal is not None:
                return
            t3 = clock()
            accepted = gate.replays(items, verdicts, known)
            t4 = clock()
            futures = await gate.send(items, verdicts)
            state.sent.set()
            t5 = clock()
            for fut in futures:
                await fut  # raises if Kafka did not take the batch
            t6 = clock()
            if state.prev is not None:
                await state.prev.acked.wait()
            if self.fatal is not None:
                return
            t7 = clock()
            for name, dt in (
                ("decode", t1 - t0),
                ("check", t2 - t1),
                ("queue", t3 - t2 + t7 - t6),
                ("replay", t4 - t3),
                ("send", t5 - t4),
                ("kafka", t6 - t5),
            ):
                stage[name] = stage.get(name, 0.0) + dt
            current = client.connection_id
            client.ack_many(a.mid for a in batch if a.qos > 0 and a.connection == current)
            state.acked.set()
            state.prev = None  # let finished batches be collected
            gate.count(items, verdicts)
            self.forwarded += len(batch)
            self.batches += 1
            self._background(gate.remember(accepted))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)

    def _background(self, coro: object) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coro  # type: ignore[misc]
            except Exception as exc:
                self._fail(exc)

        task = asyncio.create_task(guarded())
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task


def write_status(path: Path, status: dict[str, float | int]) -> None:
    """What `/healthz` reads (live_api.health): written whole, then renamed into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def decode(a: Arrived) -> Record | Rejected:
    try:
        return decode_mqtt(a.topic, a.payload, now=a.received_at)
    except Rejected as why:
        return why
    except Exception as exc:  # a bug: one poison message must not stop the bridge for good
        log.exception("decoding a message on %r failed", a.topic[:200])
        return Rejected(Reason.INTERNAL_ERROR, f"decoder failed: {type(exc).__name__}")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    bridge = Bridge(Settings())
    gc_tuning.tune()
    try:
        asyncio.run(bridge.run())
    except BridgeFailed as exc:
        log.critical("%s; exiting with status 1 (unacknowledged messages will be redelivered)", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
