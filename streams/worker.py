"""The Faust app of SiteWatch. Agents are short loops around pure functions:

- `engineer_records` (fixes.v1, key = engineer id): geofence, track, rules, persist, push live;
- `device_telemetry` (telemetry.v1, key = device id): thresholds, persist, push live;
- `rejected_sink` (rejected.v1): the dead letters, kept with their reason;
- a timer for `device_offline` (wall clock live, stream time on replay: streams.device_batch);
- `missing_log` when an engineer's stream time closes a day (rules.day_close).

What goes where: docs/streams.md.

At-least-once: every sink is idempotent (CONTRACT section 4 identities), so a redelivered batch
changes nothing. Run with `python -m streams worker`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import faust
import orjson
from faust.streams import _current_event
from sqlalchemy.ext.asyncio import AsyncEngine

from config import gc_tuning, topics
from config.settings import Settings
from rules import chief_absence, notices
from rules.alerts import live_alert
from store import chief_absence as chief_absence_store
from store import notices as notices_store
from store import trainings as trainings_store
from store.db import async_engine
from store.models import (
    RejectedMessage,
)
from store.retention import trim as trim_old_rows
from store.retry import retry_db, skip_while_db_down
from streams import dead_letters, device_batch, faust_fixes, rejected_log, sinks
from streams.engineer_writer import EngineerWriter
from streams.isolate import write_isolating
from streams.progress import STALL_AFTER_S
from wire.records import Fix as FixRecord
from wire.records import OwnTracksEvent as OwnTracksRecord
from wire.records import Record, from_dict
from wire.records import SupervisionLog as LogRecord
from wire.records import Telemetry as TelemetryRecord

log = logging.getLogger("sitewatch.streams")

ENGINEER_RECORDS = (FixRecord, LogRecord, OwnTracksRecord)
ATTENDANCE_ASK_S = 0.5  # how often the attendance pacer is asked (rules.attendance.PushPacer)


def _short_fetch_wait() -> None:
    """Faust builds its consumer with ``fetch_max_wait_ms=1500`` (hard-coded in its aiokafka
    driver); a fetch for idle partitions only holds the consumer's one fetch for that long
    (config.topics.FETCH_MAX_WAIT_MS says when, and sets the value for every consumer). The
    consumer reads the value when it starts, so setting it on the new consumer is enough."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "sitewatch", False):
        return

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = topics.FETCH_MAX_WAIT_MS  # noqa: SLF001
        return consumer

    create_worker_consumer.sitewatch = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


def build_app(settings: Settings) -> faust.App:
    faust_fixes.install()  # before the app exists: it patches Faust's consumer and recovery
    _short_fetch_wait()
    p = settings.kafka_partitions
    app = faust.App(
        "sitewatch-streams",
        broker=f"kafka://{settings.kafka_url}",
        store="rocksdb://",
        datadir=str(claim_state_dir(settings.data_dir / "faust")),
        topic_partitions=p,
        web_enabled=False,
        producer_acks=-1,
        # table writes (one changelog record per device per batch) and live messages: let
        # the producer gather them into one request per partition instead of one each
        producer_linger=0.005,
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        topic_disable_leader=True,
        # a short rebalance timeout: a worker is assigned its partitions within seconds of
        # starting, and a dead one's partitions move on quickly.
        broker_rebalance_timeout=3.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        # Off since tansu (the embedded broker until 2026-12) reported wrong high watermarks
        # and the check crash-looped every restarted worker (docs/reliability.md). Kafka's
        # are right; turning it back on awaits a fault run with it on.
        recovery_consistency_check=False,
    )
    raw = {"key_type": str, "key_serializer": "raw", "value_serializer": "raw", "partitions": p}
    fixes_topic = app.topic(topics.FIXES, **raw)
    telemetry_topic = app.topic(topics.TELEMETRY, **raw)
    rejected_topic = app.topic(topics.REJECTED, **raw)
    live_topic = app.topic(topics.LIVE, **raw)
    device_table = app.Table("device-state", partitions=p, key_type=str)
    ctx: dict[str, Any] = {}

    def writer() -> EngineerWriter:
        """The engineer batches' writer, made on first use (inside the loop). Its engine has
        generic plans (store.db.GENERIC_PLANS: its statements are index probes whatever the
        plan); the worker's other work keeps custom ones (`engine`)."""
        if "writer" not in ctx:
            batches = async_engine(settings, pre_ping=False, plans="generic")
            ctx["writer"] = EngineerWriter(settings, batches, push_live)
        return ctx["writer"]  # type: ignore[no-any-return]

    def engine() -> AsyncEngine:
        """The engine of everything else (devices, timers, dead letters), made on first use."""
        if "engine" not in ctx:
            ctx["engine"] = async_engine(settings, pre_ping=False)
        return ctx["engine"]  # type: ignore[no-any-return]

    @app.on_partitions_revoked.connect
    async def drop_cache_revoked(sender: Any, *_: Any, **__: Any) -> None:
        writer().forget()  # engineer states and tallies never outlive ownership

    @app.on_partitions_assigned.connect
    async def drop_cache_assigned(sender: Any, *_: Any, **__: Any) -> None:
        writer().forget()

    @app.on_rebalance_complete.connect
    async def mark_ready(sender: Any, **_: Any) -> None:
        # `sitewatch up` waits for this file: a worker that owns partitions is processing.
        run = settings.data_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        (run / f"worker-{os.getpid()}.ready").write_text(str(time.time()))

    async def push_live(events: list[dict[str, Any]]) -> None:
        for value in live_values(events):
            await live_topic.send(key="live", value=value)

    async def write_batches(
        stream: Any,
        size: int,
        within_s: float,
        kinds: tuple[type, ...],
        write: Callable[[Decoded], Awaitable[None]],
        what: str,
    ) -> None:
        """The loop of every agent: batches of up to `size` events, written in offset order
        and committed once written (streams.progress); a batch's database work is retried
        until PostgreSQL is back (store.retry); a record it cannot write is set aside as a
        dead letter (streams.isolate), the rest of the batch is written."""

        async def set_aside(poison: Decoded, exc: BaseException) -> None:
            log.error(
                "%s: setting %d record(s) aside as dead letters", what, len(poison), exc_info=exc
            )
            await dead_letters.keep(engine(), what, poison.records, poison.events, exc)

        async def write_events(admitted: list[Any]) -> None:
            await write_isolating(decode_events(admitted, kinds), write, set_aside)

        async for events in stream.take_events(size, within=within_s):
            with faust_fixes.batch_in_progress(events):
                await retry_db(
                    faust_fixes.write_in_order,
                    app.consumer,
                    events,
                    write_events,
                    what=what,
                    log_to=log,
                )

    @app.agent(fixes_topic)
    async def engineer_records(stream: Any) -> Any:
        await write_batches(
            stream,
            settings.batch_events,
            settings.batch_within_s,
            ENGINEER_RECORDS,
            engineer_batch,
            "engineer_records",
        )

    async def engineer_batch(decoded: Decoded) -> None:
        timing = writer().timing
        timing.since_received(decoded.received, "taken")
        # the bridge's Kafka send time of each record's envelope: the wait in Kafka and Faust
        timing.since_received([e.message.timestamp for e in decoded.events], "taken, from Kafka")
        envelopes = len({id(e) for e in decoded.events})
        await writer().write(decoded.records, envelopes)
        timing.since_received(decoded.received, "written")

    @app.agent(telemetry_topic)
    async def device_telemetry(stream: Any) -> Any:
        await write_batches(
            stream,
            settings.batch_events,
            settings.side_batch_within_s,
            (TelemetryRecord,),
            telemetry_batch,
            "device_telemetry",
        )

    async def telemetry_batch(decoded: Decoded) -> None:
        records, events, received = decoded.records, decoded.events, decoded.received
        if not records:
            return
        by_key = {r.device_id: e for r, e in zip(records, events, strict=True)}  # type: ignore[union-attr]
        devices = await device_batch.load_devices(engine(), {r.device_id for r in records})  # type: ignore[union-attr]
        states = {d: device_table.get(d) or {} for d in devices}
        out = device_batch.process(
            records, devices=devices, states=states, settings=settings, received=received
        )
        async with engine().begin() as conn:
            await sinks.insert_new(conn, sinks.Telemetry, out.rows)
            await device_batch.upsert_last_seen(conn, out.last_seen)
            new_alerts = await sinks.insert_alerts(conn, out.alerts)
            resolved = await device_batch.close_offline(conn, out.newest)
        for device_id, state in out.states.items():
            write_keyed(device_table, device_id, state, by_key[device_id])
        await push_live(out.live + [live_alert(a) for a in [*new_alerts, *resolved]])

    @app.agent(rejected_topic)
    async def rejected_sink(stream: Any) -> Any:
        async for events in stream.take_events(
            settings.batch_size, within=settings.side_batch_within_s
        ):
            with faust_fixes.batch_in_progress(events):
                await retry_db(
                    faust_fixes.write_in_order,
                    app.consumer,
                    events,
                    rejected_batch,
                    what="rejected_sink",
                    log_to=log,
                )

    async def rejected_batch(events: list[Any]) -> None:
        """Counted exactly, kept as a sample (streams.rejected_log)."""

        async def insert(part: list[Any]) -> None:
            async with engine().begin() as conn:
                fresh = await rejected_log.new_events(conn, topics.REJECTED, part)
                rows = dead_letters.rejection_rows(fresh)
                kept = await rejected_log.tally_and_sample(
                    conn, rows, settings.rejected_sample_per_hour
                )
                await sinks.insert_new(conn, RejectedMessage, kept)

        async def drop(part: list[Any], exc: BaseException) -> None:
            log.error("a rejection could not be stored: %r", [e.value for e in part], exc_info=exc)

        await write_isolating(events, insert, drop)

    @app.timer(interval=STALL_AFTER_S / 2)
    async def read_stalled_partitions() -> None:
        await faust_fixes.reseek_stalled(app.consumer)

    sweeper = gc_tuning.Sweeper()

    @app.timer(interval=gc_tuning.SWEEP_EVERY_S)
    async def sweep_young_objects() -> None:
        sweeper.sweep()

    @app.timer(interval=10.0)
    async def report_timing() -> None:
        line = writer().timing.report()
        if line:
            log.info("%s", line)

    @app.timer(interval=min(ATTENDANCE_ASK_S, settings.attendance_push_interval_s / 4))
    async def push_attendance() -> None:
        """Live attendance of the keys that got on-site fixes, each at most once per interval
        (rules.attendance.PushPacer); asked every half second to spread the pushes."""
        messages = writer().attendance_messages()
        if messages:
            await push_live(messages)

    @app.timer(interval=settings.offline_check_interval_s)
    @skip_while_db_down("device_offline check", log)
    async def device_offline() -> None:
        async with engine().begin() as conn:
            new_alerts = await sinks.insert_alerts(
                conn, await device_batch.offline_alerts(conn, settings)
            )
        await push_live([live_alert(a) for a in new_alerts])

    judged_once: list[bool] = []  # every closed month is judged once after a start

    @app.timer(interval=settings.chief_check_interval_s)
    @skip_while_db_down("chief_absent check", log)
    async def chief_absent() -> None:
        """CONTRACT §6.5 (rules.chief_absence): after a start every closed month of the last
        year, then the closed months that got on-site fixes since they were last judged, once
        those have stopped coming for `chief_quiet_s`."""
        tz = ZoneInfo(settings.timezone)
        closed = chief_absence.closed_months(
            dt.datetime.now(dt.UTC), tz, settings.allowed_lateness_s
        )
        due = writer().months_due
        quiet = {m: t for m, t in due.items() if time.monotonic() - t >= settings.chief_quiet_s}
        months = closed if not judged_once else sorted(quiet.keys() & set(closed))
        if not months:
            return
        async with engine().begin() as conn:
            duties = await chief_absence_store.duties(conn)
            rows = await chief_absence_store.attendance_of(
                conn,
                duties,
                months[0],
                chief_absence.next_month(months[-1]) - dt.timedelta(days=1),
                max_gap_s=settings.max_gap_s,
                max_shift_s=settings.max_shift_s,
            )
            verdicts = chief_absence.judge(
                duties, rows, months, min_minutes_present=settings.min_minutes_present, tz=tz
            )
            new_alerts = await sinks.insert_alerts(
                conn, [a for a in verdicts.values() if a is not None]
            )
            # raised on a month's fixes so far, and late fixes put the chief there enough
            await sinks.retract_alerts(
                conn,
                [i for i, a in verdicts.items() if a is None],
                "late fixes put the chief there on enough days",
            )
        judged_once.append(True)
        for month in months:  # unless newer fixes of it came in meanwhile
            if month in quiet and due.get(month) == quiet[month]:
                del due[month]
        await push_live([live_alert(a) for a in new_alerts])

    @app.timer(interval=settings.training_check_interval_s)
    @skip_while_db_down("training credits", log)
    async def credit_trainings() -> None:
        """Offline trainings that ended: their attendees' CE records, once (store.trainings)."""
        async with engine().begin() as conn:
            credited = await trainings_store.credit_ended(
                conn,
                now=dt.datetime.now(dt.UTC),
                max_gap_s=settings.max_gap_s,
                max_accuracy_m=settings.max_accuracy_m,
                allowed_lateness_s=settings.allowed_lateness_s,
                timezone=settings.timezone,
            )
        for training_id, engineers in credited.items():
            if engineers:
                log.info("training %s credited %d engineers", training_id, len(engineers))

    @app.timer(interval=settings.notice_check_interval_s)
    @skip_while_db_down("notice_overdue check", log)
    async def notice_overdue() -> None:
        """CONTRACT §6.5 (rules.notices): notices past their deadline, not rectified or closed
        by it; one alert per notice (its id), whatever restarts."""
        now = dt.datetime.now(dt.UTC)
        async with engine().begin() as conn:
            raised = notices.overdue_alerts(await notices_store.due(conn, now), now)
            new_alerts = await sinks.insert_alerts(conn, raised)
            await notices_store.mark_overdue(conn, [a["details"]["notice_id"] for a in raised], now)
        await push_live([live_alert(a) for a in new_alerts])

    @app.timer(interval=3600.0)
    @skip_while_db_down("retention", log)
    async def retention() -> None:
        """Bounded growth: trim rows older than the retention settings (store/retention.py)."""
        await trim_old_rows(engine(), settings)

    return app


_STATE_LOCKS: list[Any] = []  # lock files held for the life of the process


def claim_state_dir(base: Path) -> Path:
    """A RocksDB directory of this worker process alone: the first ``worker-N`` under `base`
    that no running worker holds (an flock held until the process ends, so a restarted worker
    gets its directory back). Workers sharing one directory block each other: Faust keeps the
    RocksDB of a revoked partition open, and the worker it moved to waits for its lock."""
    base.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        slot = base / f"worker-{n}"
        slot.mkdir(exist_ok=True)
        lock = open(slot / ".lock", "w")  # noqa: SIM115 - held open on purpose
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _STATE_LOCKS.append(lock)
        return slot
    raise AssertionError("unreachable")


LIVE_CHUNK = 400  # live messages per Kafka record: a big batch must stay far below 1 MiB


def live_values(events: list[dict[str, Any]]) -> list[bytes]:
    """The live messages of a batch as Kafka values (JSON lists) of at most `LIVE_CHUNK`
    messages each. One value for a whole batch of thousands of fixes would exceed the
    producer's 1 MiB request limit, and Faust stops the worker on that error."""
    return [
        orjson.dumps(events[i : i + LIVE_CHUNK], default=_json_default)
        for i in range(0, len(events), LIVE_CHUNK)
    ]


def write_keyed(table: Any, key: str, value: Any, event: Any) -> None:
    """Write one key's state once per batch, in the context of an event of that key.

    A table write lands in the store and changelog partition of the current event; inside a
    `take_events()` batch there is none, so we name the key's own last event (the source topic
    is keyed by the same id with the same partitioner, so its partition is the key's).
    """
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)


@dataclass(frozen=True, slots=True)
class Decoded:
    """The records of a batch's Kafka events, each with the event that carried it (several
    records share one event when the bridge sent an envelope) and the gate's `received_at`."""

    records: list[Record]
    events: list[Any]
    received: list[float | None]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, part: slice) -> Decoded:
        return Decoded(self.records[part], self.events[part], self.received[part])


def decode_events(events: list[Any], kinds: tuple[type, ...]) -> Decoded:
    """Records of a batch, with their events. An event's value is one record (a JSON object)
    or an envelope of records of its partition (a JSON array, ingest.gate.envelopes). A value
    that does not decode, or a record of another kind (it did not come from the gate), is
    logged and skipped: it must not stop the partition."""
    out = Decoded([], [], [])
    for e in events:
        try:
            value = orjson.loads(e.value)
        except (ValueError, TypeError) as exc:
            log.error("skipping undecodable record at %s: %s", e.message.tp, exc)
            continue
        for d in value if isinstance(value, list) else (value,):
            try:
                record = from_dict(d)
            except (ValueError, TypeError) as exc:
                log.error("skipping undecodable record at %s: %s", e.message.tp, exc)
                continue
            if not isinstance(record, kinds):
                log.error("skipping a %s record on %s", type(record).__name__, e.message.tp)
                continue
            received = d.get("received_at")
            out.records.append(record)
            out.events.append(e)
            out.received.append(float(received) if isinstance(received, int | float) else None)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)
