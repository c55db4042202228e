"""Two corrections to faust-streaming 0.15.3 that lost accepted fixes after a rebalance or a
worker restart (docs/reliability.md, "Offsets committed past unread records").

1. Seek before fetching. When recovery ends, Faust resumes the stream partitions and *then*
   seeks them to their committed offsets, one broker round trip per partition. Meanwhile the
   fetcher reads from the old position; the records it delivers in that window go into the
   agents' queues, which `flow_control.resume()` then clears, and the consumer's read offset is
   set back to the committed one. The next record read looks like a gap, and Faust counts the
   offsets of a gap as acknowledged: the cleared records are committed, never processed
   (faust-streaming issues 216, 596). Here the partitions stay paused until the seek is done
   and the queues are cleared, so nothing is read from the old position.

2. For the source topics (the gate's), the committed offset is what the worker *wrote*, not
   what Faust acknowledged: `streams.progress` admits each partition's records in offset order,
   seeks back over a gap, and commits the offset after the unbroken run written to PostgreSQL.
   Faust's consumer drops records on the way to the agent in more places than (1) (records
   fetched for a partition paused meanwhile, messages skipped for an old generation), and it
   commits over gaps, and over a hole of one record right after the committed offset (its
   check is `min(acked) - committed > 1`, while the committed offset is the next to read).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

from config import topics
from streams.progress import STALL_AFTER_S, Progress

log = logging.getLogger("sitewatch.streams")

SOURCE_TOPICS = frozenset({topics.FIXES, topics.TELEMETRY, topics.REJECTED})
# Diagnostics: log the offsets of every engineer batch written and of every commit (fixes.v1).
TRACE = os.environ.get("SITEWATCH_TRACE_OFFSETS") == "1"


async def _seek_paused_streams(recovery: Any) -> None:
    """Seek the (still paused) stream partitions, clear the queues, and only then resume."""
    app = recovery.app
    consumer = app.consumer
    assignment = consumer.assignment()
    streams = {tp for tp in assignment if not recovery._is_changelog_tp(tp)}
    if assignment:
        consumer.pause_partitions(streams)
        recovery.log.info("Seek stream partitions to committed offsets (paused).")
        await recovery._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    recovery.completed.set()
    app.flow_control.resume()  # clears the agents' queues: nothing in them is from after the seek
    consumer.resume_flow()
    consumer.resume_partitions(streams)
    await cast(Any, app)._fetcher.maybe_start()


async def _on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    self.log.info("Restore complete!")
    await self.app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    if self.app.consumer_generation_id != generation_id:
        self.log.warning(
            "Recovery rebalancing again app id %s param %s",
            self.app.consumer_generation_id,
            generation_id,
        )
        return
    await _seek_paused_streams(self)
    self.tables.on_actives_ready()
    if not self.app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _resume_streams(self: Any, generation_id: int = 0) -> None:
    await self.app.on_rebalance_complete.send()
    if self.app.consumer_generation_id != generation_id:
        self.log.warning("Recovery rebalancing again")
        return
    await _seek_paused_streams(self)
    self.tables.on_actives_ready()
    self.tables.on_standbys_ready()
    self.app.on_rebalance_end()
    self.log.info("Worker ready")


async def _add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    if tp.topic in SOURCE_TOPICS:
        return  # streams.progress finds and reads again what never reached the agent
    await _faust_add_gap(self, tp, offset_from, offset_to)


def _new_offset(self: Any, tp: Any) -> int | None:
    if tp.topic in SOURCE_TOPICS:
        self._acked[tp].clear()  # acknowledged is not written: see streams.progress
        self._acked_index[tp].clear()
        return PROGRESS.committable(tp)
    return cast(int | None, _faust_new_offset(self, tp))


async def _perform_seek(self: Any) -> None:
    await _faust_perform_seek(self)
    read = self._read_offset
    positions = {tp: read.get(tp) for tp in self.assignment() if tp.topic in SOURCE_TOPICS}
    PROGRESS.owned(await _start_of_uncommitted(self, positions))


async def _start_of_uncommitted(
    consumer: Any, positions: dict[Any, int | None]
) -> dict[Any, int | None]:
    """A partition no one committed for yet starts at its first record (the log start), not at
    the first record that happens to reach the agent: Faust can drop that one on its way too.
    If the broker cannot say, the partition keeps None (take the first record seen)."""
    unknown = [tp for tp, offset in positions.items() if offset is None]
    if not unknown:
        return positions
    try:
        earliest = await consumer.earliest_offsets(*unknown)
    except Exception as exc:  # noqa: BLE001 - the worker must start anyway
        log.warning("no log start offsets for %s (%r): taking their first records", unknown, exc)
        return positions
    return {tp: _valid(earliest.get(tp)) if o is None else o for tp, o in positions.items()}


def _valid(offset: Any) -> int | None:
    """An offset to start from; anything else (missing, -1 for "unknown") is None."""
    return offset if isinstance(offset, int) and offset >= 0 else None


async def _on_partitions_revoked(self: Any, revoked: Any) -> None:
    await _faust_on_partitions_revoked(self, revoked)  # commits what was written, first
    PROGRESS.forget(revoked)


_faust_add_gap = Consumer._add_gap
_faust_new_offset = Consumer._new_offset
_faust_perform_seek = Consumer.perform_seek
_faust_on_partitions_revoked = Consumer.on_partitions_revoked
_faust_commit = AIOKafkaConsumer._commit
PROGRESS = Progress()  # one worker process, one consumer


# The corrections replace private methods of exactly this release; another one may have
# moved or fixed them, so the worker refuses to start rather than patch blindly.
FAUST_VERSION = "0.15.3"


def check_faust_version(installed: str | None = None) -> None:
    found = installed if installed is not None else importlib.metadata.version("faust-streaming")
    if found != FAUST_VERSION:
        raise RuntimeError(
            f"streams.faust_fixes was written for faust-streaming {FAUST_VERSION}, found "
            f"{found}: re-check each correction against it (tests/streams/test_faust_fixes.py, "
            "tests/fault/) before changing FAUST_VERSION"
        )


def install() -> None:
    """Apply both corrections (idempotent)."""
    check_faust_version()
    Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
    Recovery._resume_streams = _resume_streams  # type: ignore[method-assign]
    Consumer._add_gap = _add_gap  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
    Consumer.on_partitions_revoked = _on_partitions_revoked  # type: ignore[method-assign]
    if TRACE:
        AIOKafkaConsumer._commit = _traced_commit  # type: ignore[method-assign]


async def _traced_commit(self: Any, offsets: Any) -> Any:
    mine = {tp.partition: o for tp, o in offsets.items() if tp.topic == topics.FIXES}
    if mine:
        log.info("TRACE commit %s", mine)
    return await _faust_commit(self, offsets)


def _trace_written(events: list[Any]) -> None:
    spans: dict[int, list[int]] = {}
    for e in events:
        if e.message.tp.topic == topics.FIXES:
            spans.setdefault(e.message.tp.partition, []).append(e.message.offset)
    if spans:
        log.info("TRACE done %s", {p: (min(o), max(o), len(o)) for p, o in spans.items()})


def tp_of(event: Any) -> Any:
    return event.message.tp


async def admit(consumer: Any, events: list[Any]) -> list[Any]:
    """The events of a batch the worker should write now (streams.progress); partitions with
    a gap are sought back to the first offset missing."""
    admitted = PROGRESS.admit(events, tp_of)
    for tp, offset in admitted.seek.items():
        log.warning(
            "%s: records from offset %d never reached the worker; reading again", tp, offset
        )
        await consumer.seek(tp, offset)
    return admitted.events


@contextlib.contextmanager
def batch_in_progress(events: list[Any]) -> Iterator[None]:
    """Around the whole write of a batch, retries included: the stall check leaves its topic
    alone meanwhile, whatever way the batch ends."""
    tps = [tp_of(e) for e in events]
    PROGRESS.writing(tps)
    try:
        yield
    finally:
        PROGRESS.finished(tps)


# the broker's answer about partition ends, asked by an earlier check and maybe still running:
# it runs on the consumer's thread, whose two workers also fetch and commit, so a check waits
# for it to end instead of asking again (a timeout here does not stop it there)
_ENDS: dict[str, asyncio.Future[Any]] = {}


async def reseek_stalled(consumer: Any, timeout_s: float = 5.0) -> dict[Any, int]:
    """Seek the source partitions that have records waiting and wrote none for a while
    (streams.progress.Progress.stalled) back to their next offset. For the worker's timer:
    a gap is otherwise noticed only when a later record arrives, and a seek lost to a
    rebalance would leave the last records of a partition unwritten until the next message,
    or forever. Returns what was sought."""
    pending = _ENDS.get("asked")
    if pending is not None and pending.done() and not pending.cancelled():
        pending.exception()  # an answer that came too late: retrieved, then asked anew
    try:
        if pending is None or pending.done():
            owned = [tp for tp in consumer.assignment() if tp.topic in SOURCE_TOPICS]
            if not owned:
                return {}
            pending = _ENDS["asked"] = asyncio.ensure_future(consumer.highwaters(*owned))
        ends = dict(await asyncio.wait_for(asyncio.shield(pending), timeout_s))
    except Exception as exc:  # noqa: BLE001 - a rebalance or a broker away: try next time
        log.info("partition ends not known now (%r); stall check skipped", exc)
        PROGRESS.ends_unknown()
        return {}
    finally:
        if pending is not None and pending.done():
            _ENDS.pop("asked", None)
    stalled = PROGRESS.stalled(ends, topic_of=lambda tp: tp.topic)
    sought = {}
    for tp, offset in stalled.items():
        if tp not in consumer.assignment():
            continue  # revoked meanwhile: its new owner reads it from the committed offset
        log.warning(
            "%s: records from offset %d to %d wait, yet none was written for %.0f s; reading again",
            tp,
            offset,
            ends[tp],
            STALL_AFTER_S,
        )
        try:
            await consumer.seek(tp, offset)
        except Exception as exc:  # noqa: BLE001 - the next check tries again
            log.warning("%s: could not seek to %d (%r)", tp, offset, exc)
            continue
        sought[tp] = offset
    return sought


def written(events: list[Any]) -> None:
    """The admitted events are in PostgreSQL: their offsets may be committed."""
    PROGRESS.done(events, tp_of)
    if TRACE:
        _trace_written(events)


async def write_in_order(
    consumer: Any, batch: list[Any], write: Callable[[list[Any]], Awaitable[None]]
) -> None:
    """`write` the admitted events of a batch, then let their offsets be committed."""
    admitted = await admit(consumer, batch)
    await write(admitted)
    written(admitted)
