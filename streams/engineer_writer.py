"""One batch of an engineer partition, from records to committed facts: the rules
(rules.engineer_batch), then one transaction with the facts, what is derived from them and
the evidence chain, then the live messages. An ordinary object with its dependencies passed
in: the worker's agent calls it (streams.worker), and tests call it without Faust."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from categories import model as categories
from config.settings import Settings
from rules import notices
from rules.alerts import live_alert
from rules.attendance import AttendanceBook, PushPacer, check_event_keys, on_site_fixes
from rules.day_close import missing_log_alerts
from rules.engineer_batch import process_engineer_batch
from store import cache_versions
from store import evidence as evidence_chain
from store import notices as notices_store
from store.engineer_facts import EngineerFactsCache
from store.engineer_states import EngineerStates
from store.engineer_states import save as save_states
from store.fence_cache import FenceCache
from store.models import Fix, OwnTracksEvent, SupervisionLog, Transition
from store.queries import attendance_tallies, unlogged_days
from streams import sinks
from streams.stats import StepTimes
from wire.records import Record
from wire.records import SupervisionLog as WireLog

FIX_KEY = ("engineer_id", "msg_id")
PushLive = Callable[[list[dict[str, Any]]], Awaitable[None]]


log = logging.getLogger("sitewatch.engineer_writer")


@dataclass
class EngineerWriter:
    settings: Settings
    engine: AsyncEngine
    push_live: PushLive
    fences: FenceCache = field(init=False)
    facts: EngineerFactsCache = field(init=False)
    # decoded engineer states, kept between batches; the worker forgets them on a rebalance
    states: EngineerStates = field(init=False)
    # live attendance (rules.attendance): tallies kept as fixes are written
    book: AttendanceBook = field(init=False)
    # the attendance keys that changed, paced (the worker's timer asks every half second)
    attendance_due: PushPacer = field(init=False)
    # the months (first days) with on-site fixes that `chief_absent` has not judged since,
    # with the monotonic time of the newest (rules.chief_absence: the worker's timer judges
    # them once they have closed and have been quiet for `chief_quiet_s`)
    months_due: dict[dt.date, float] = field(default_factory=dict)
    timing: StepTimes = field(default_factory=lambda: StepTimes("engineer_records"))

    def __post_init__(self) -> None:
        self.fences = FenceCache(self.engine)
        self.facts = EngineerFactsCache(self.engine)
        self.states = EngineerStates(self.settings)
        self.book = AttendanceBook(self.settings.max_gap_s)
        self.attendance_due = PushPacer(self.settings.attendance_push_interval_s)
        self._tz = ZoneInfo(self.settings.timezone)

    def forget(self) -> None:
        """Partitions moved: what is kept in memory may belong to another worker now."""
        self.states.forget()
        self.book.forget()
        self.attendance_due.forget()

    async def write(self, records: Sequence[Record], kafka_records: int | None = None) -> None:
        """Write one batch; idempotent, so a redelivered batch changes nothing.
        `kafka_records`: how many Kafka records carried them (envelopes hold several)."""
        settings = self.settings
        self.timing.start(len(records) if kafka_records is None else kafka_records)
        self.timing.count(len(records))
        if not records:
            return
        engineer_ids = {r.engineer_id for r in records}  # type: ignore[union-attr]
        # One connection and transaction for the whole batch, the reads included: each
        # checkout and transaction is round trips, and a half-loaded worker writes small
        # batches, so they were a good part of a batch's time (docs/BENCHMARKS.md).
        async with self.engine.begin() as conn:
            fences_version, facts_version = await cache_versions.read(conn)
            fences = await self.fences.current(conn, fences_version)
            facts = await self.facts.get(engineer_ids, conn, facts_version)
            states = await self.states.get(conn, engineer_ids)
            self.timing.lap("read")
            out = process_engineer_batch(
                records, fences=fences, states=states, facts=facts, settings=settings
            )
            if out.logs:
                _categorise(out.logs, out.live)
            self.timing.lap("rules")
            # facts first (fixes, logs), then what is derived from them
            new_fixes = await sinks.insert_new_keys(conn, Fix, out.fixes, FIX_KEY)
            await sinks.insert_new(conn, SupervisionLog, out.logs)
            out.live.extend(await _open_notices(conn, records, fences.project_region))
            await sinks.insert_new(conn, OwnTracksEvent, out.ot_events)
            await sinks.insert_new(conn, Transition, out.transitions)
            await sinks.retract(conn, out.retracted)
            unlogged = await unlogged_days(
                conn, [(c.engineer_id, c.first, c.last) for c in out.day_checks]
            )
            alerts = out.alerts + missing_log_alerts(unlogged, self._tz)
            new_alerts = await sinks.insert_alerts(conn, alerts)
            plan = self.book.plan(
                on_site_fixes(out.fixes, fences.project_region), check_event_keys(out.fixes)
            )
            recomputed = await attendance_tallies(
                conn,
                max_gap_s=settings.max_gap_s,
                max_shift_s=settings.max_shift_s,
                keys=sorted(plan.recompute),
            )
            self.timing.lap("sinks")
            # Evidence chain (rules.evidence_chain): same transaction, idempotent.
            await evidence_chain.append(
                conn,
                records,
                allowed_lateness_s=settings.allowed_lateness_s,
                timezone=settings.timezone,
                fixes=evidence_chain.FixesWritten(
                    {(r["engineer_id"], r["msg_id"]) for r in out.fixes},
                    new_fixes,
                    evidence_chain.kept_after(settings.retention_days, time.time()),
                ),
            )
            self.timing.lap("evidence")
            await save_states(conn, out.states)
            self.timing.lap("state")
        self.timing.lap("commit")
        self.states.remember(out.states)
        self.book.commit(plan, recomputed)
        self.attendance_due.changed(plan.regions)
        written = time.monotonic()
        self.months_due.update((key[2].replace(day=1), written) for key in plan.regions)
        await self.push_live(out.live + [live_alert(a) for a in new_alerts])
        self.timing.lap("live")

    def attendance_messages(self, now: float | None = None) -> list[dict[str, Any]]:
        """Live attendance of the keys that got on-site fixes since they were last pushed,
        coalesced: at most one message per key and `attendance_push_interval_s`, from the
        tallies."""
        keys = self.attendance_due.take(time.monotonic() if now is None else now)
        rows = (self.book.row(k, self.settings.min_minutes_present) for k in keys)
        return [{"type": "attendance", **r} for r in rows if r is not None]


def _categorise(logs: list[dict[str, Any]], live: list[dict[str, Any]]) -> None:
    """Each practice record's text category (categories.model), on its row and its live
    message. The model is trained once, at the first record."""
    found = dict(
        zip(
            (f"{row['engineer_id']}:{row['msg_id']}" for row in logs),
            categories.default().categories(row["text"] for row in logs),
            strict=True,
        )
    )
    for row in logs:
        row["category"] = found[f"{row['engineer_id']}:{row['msg_id']}"]
    for message in live:
        if message.get("type") == "record":
            message["category"] = found.get(message["id"])


async def _open_notices(
    conn: Any, records: list[Any], project_region: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The notices the batch's notice and stop-work records open (rules.notices), in the
    transaction that writes the records: a notice exists exactly when its record does, once,
    whatever redelivery. Their live `notice` messages."""
    live = []
    for r in records:
        if not isinstance(r, WireLog) or r.kind not in notices.NOTICE_KINDS:
            continue
        try:
            fields = notices.fields_of(json.loads(r.canonical), r.ts, r.msg_id)
        except (notices.NotAllowed, ValueError) as why:  # the API refuses these before
            log.warning("record %s:%s opens no notice: %s", r.engineer_id, r.msg_id, why)
            continue
        row = notices.notice_row(r, fields, project_region.get(r.project_id, ""))
        if await notices_store.issue(conn, row, f"engineer:{r.engineer_id}"):
            live.append(notices.live_message({**row, "status": "open", "settled_at": None}))
    return live
