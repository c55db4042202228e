"""The one way into SiteWatch: decoded records are checked (identity, signature, replay),
handed to Kafka, and only then acknowledged to their sender. Used by the MQTT bridge (as a
pipeline of stages, see ingest.bridge) and by the HTTP ingest routes (:meth:`Gate.admit`).

Stages of a batch:

1. :meth:`Gate.check` - identity, SM2 signature (verified in a process pool when one is
   given, see ingest.sm2pool) and SM3-HMAC; may run for several batches at once.
2. :meth:`Gate.seen_before` (concurrent) and :meth:`Gate.replays` (in arrival order) - replay
   protection: a record's (identity, msg_id) is looked up in the ``ingest_seen`` table (which
   survives restarts) and in a bounded in-memory cache; accepted keys enter the cache at once.
3. :meth:`Gate.send` - accepted records to ``fixes.v1``/``telemetry.v1`` (key = engineer or
   device id, the producer's default partitioner), every rejection to ``rejected.v1``;
   returns the futures Kafka resolves once it holds them (``acks=all``). Accepted records of
   one batch that fall in the same partition travel as *envelopes*: one Kafka record whose
   value is a JSON array of up to ``ENVELOPE_RECORDS`` records (see :func:`envelopes`), because
   the stream worker's cost is per Kafka record, not per byte (docs/streams.md).
4. :meth:`Gate.remember` - after Kafka confirmed, the accepted keys are written to
   ``ingest_seen``. A crash before that leads to a redelivery that is accepted again (a
   duplicate in Kafka, dropped by the sinks' unique keys), never to a loss.

A message the broker redelivers (MQTT DUP flag) whose msg_id was already accepted is not a
rejection: it is counted as ``redelivered`` and acknowledged, without a dead letter.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy.ext.asyncio import AsyncEngine

from config import topics
from devices.directory import DirectoryCache
from gm.algorithms import verify_sm2
from ingest.counters import Counters
from ingest.sm2pool import Sm2Pool, Triple
from rules.verify import check_many, sm2_work
from store.db import driver_connection
from store.retry import is_poison, pg_text, retry_db
from wire.records import Fix, Reason, Record, Rejected, SupervisionLog, Telemetry, to_json

log = logging.getLogger("sitewatch.ingest")

EXCERPT_BYTES = 300
# Records per envelope, and bytes: far below Kafka's default 1 MiB message limit.
ENVELOPE_RECORDS = 250
ENVELOPE_BYTES = 256 * 1024
# Both run on the driver's connection, each on its own (store.db.driver_connection). The
# look-up is one primary-key probe per key, whatever the statistics say: as a join, a table
# grown since it was last analysed (a new deployment, the bench) looked small enough to the
# planner to hash all of it for every batch (23 ms instead of 2 for 338 keys in 60,000 rows).
SEEN_SQL = (
    "SELECT s.identity, s.msg_id FROM unnest($1::text[], $2::text[]) AS u(identity, msg_id) "
    "CROSS JOIN LATERAL (SELECT s.identity, s.msg_id FROM ingest_seen s "
    "WHERE s.identity = u.identity AND s.msg_id = u.msg_id OFFSET 0) s"
)
REMEMBER_SQL = (
    "INSERT INTO ingest_seen (identity, msg_id) "
    "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING"
)
REDELIVERED = "redelivered"
Key = tuple[str, str]


@dataclass(slots=True)
class Incoming:
    source: str  # 'mqtt' | 'http'
    topic: str  # MQTT topic or HTTP path
    payload: bytes
    received_at: float
    decoded: Record | Rejected
    mid: int = 0  # MQTT packet id (part of a dead letter's idempotent id)
    redelivered: bool = False  # MQTT DUP flag: the broker sends it again


def identity_of(record: Record) -> str:
    return record.device_id if isinstance(record, Telemetry) else record.engineer_id


class SeenCache:
    """Most recently accepted keys, bounded (oldest evicted first)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[Key, None] = OrderedDict()

    def __contains__(self, key: Key) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def discard(self, key: Key) -> None:
        self._keys.pop(key, None)

    def add(self, key: Key) -> None:
        keys = self._keys
        if key in keys:
            keys.move_to_end(key)
            return
        keys[key] = None
        if len(keys) > self.capacity:
            keys.popitem(last=False)


def envelopes(values: Sequence[bytes]) -> list[bytes]:
    """Record values (JSON objects, all of one partition) as JSON arrays of at most
    ``ENVELOPE_RECORDS`` records and about ``ENVELOPE_BYTES``, in their order. A single record
    stays a bare object: consumers read both forms (streams.worker.decode_events)."""
    if len(values) == 1:
        return [values[0]]
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for v in values:
        if chunk and (len(chunk) >= ENVELOPE_RECORDS or size + len(v) > ENVELOPE_BYTES):
            out.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 0
        chunk.append(v)
        size += len(v) + 1
    if chunk:
        out.append(b"[" + b",".join(chunk) + b"]")
    return out


class Partitions:
    """The producer's default partitioner (murmur2 of the key), cached per key."""

    def __init__(self) -> None:
        self._partitioner = DefaultPartitioner()
        self._parts: dict[str, list[int]] = {}
        self._cache: dict[tuple[str, bytes], int] = {}

    async def load(self, producer: AIOKafkaProducer, topic: str) -> None:
        if topic not in self._parts:
            self._parts[topic] = sorted(await producer.partitions_for(topic))

    def loaded(self, topic: str) -> bool:
        return topic in self._parts

    def spread(self, topic: str, n: int) -> int:
        """A partition for a record without a key (dead letters)."""
        parts = self._parts[topic]
        return parts[n % len(parts)]

    def of(self, topic: str, key: bytes) -> int:
        hit = self._cache.get((topic, key))
        if hit is None:
            parts = self._parts[topic]
            hit = self._partitioner(key, parts, parts)
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[(topic, key)] = hit
        return hit


class Gate:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        engine: AsyncEngine,
        directory: DirectoryCache,
        *,
        require_mac: bool = False,
        sm2_pool: Sm2Pool | None = None,
        counters: Counters | None = None,
        seen_capacity: int = 1_000_000,
    ) -> None:
        self.producer = producer
        self.engine = engine
        self.directory = directory
        self.seen = SeenCache(seen_capacity)
        self.require_mac = require_mac
        self.sm2_pool = sm2_pool
        self.counters = counters or Counters("http")
        self.partitions = Partitions()

    async def warm_up(self, connections: int = 4) -> None:
        """Load partition counts and open database connections before traffic arrives (the
        first batches would otherwise pay for them)."""
        for topic in (topics.FIXES, topics.TELEMETRY, topics.REJECTED):
            await self.partitions.load(self.producer, topic)

        async def probe() -> None:
            async with driver_connection(self.engine) as conn:
                await conn.fetch(SEEN_SQL, ["-"], ["-"])

        await asyncio.gather(
            *(retry_db(probe, what="gate warm-up", log_to=log) for _ in range(connections))
        )

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes counted by this process (accepted, each reason, redelivered)."""
        return self.counters.totals

    # -- stages 1 and 2, isolating poison ------------------------------------------------

    async def screen(self, items: Sequence[Incoming]) -> tuple[list[Rejected | None], set[Key]]:
        """:meth:`check` and :meth:`seen_before` of a batch. When they fail on something the
        data causes (not the database being away, which they wait out), the batch is halved
        until the items that fail alone are found: each becomes an ``internal_error``
        rejection (a dead letter with the exception), the others are screened as usual. A
        poison message costs only itself."""
        try:
            verdicts = await self.check(items)
            return verdicts, await self.seen_before(items, verdicts)
        except Exception as exc:
            if not is_poison(exc):
                raise
            if len(items) == 1:
                log.error(
                    "a message on %r could not be screened; kept as a dead letter",
                    items[0].topic[:200],
                    exc_info=exc,
                )
                return [poisoned(exc)], set()
        half = len(items) // 2
        left, right = await self.screen(items[:half]), await self.screen(items[half:])
        return left[0] + right[0], left[1] | right[1]

    # -- stage 1 ----------------------------------------------------------------------------

    async def check(self, items: Sequence[Incoming]) -> list[Rejected | None]:
        """Decoding verdicts plus identity, signature and MAC checks; None = passes."""
        records = [i.decoded for i in items]
        ok = [r for r in records if not isinstance(r, Rejected)]
        verdicts: list[Rejected | None] = [r if isinstance(r, Rejected) else None for r in records]
        if not ok:
            return verdicts
        await retry_db(  # PostgreSQL restarting pauses the gate, it does not fail it
            self.directory.prefetch,
            {r.engineer_id for r in ok if not isinstance(r, Telemetry)},
            {r.device_id for r in ok if isinstance(r, Telemetry)},
            {r.project_id for r in ok if isinstance(r, SupervisionLog)},
            what="directory look-up",
            log_to=log,
        )
        verifier = await self._presigned(ok)
        checks = check_many(ok, self.directory, require_mac=self.require_mac, verify_sm2=verifier)
        it = iter(checks)
        for k, r in enumerate(records):
            if not isinstance(r, Rejected):
                verdicts[k] = next(it)
        return verdicts

    async def _presigned(self, records: Sequence[Record]) -> Callable[[str, bytes, str], bool]:
        """Verify every SM2 signature of the batch at once (in the pool when there is one);
        returns a ``verify_sm2`` look-alike answering from those results."""
        work: list[Triple] = sm2_work(records, self.directory)
        if not work or self.sm2_pool is None:
            return verify_sm2
        unique = list(dict.fromkeys(work))
        results = dict(zip(unique, await self.sm2_pool.verify_many(unique), strict=True))

        def lookup(pub: str, data: bytes, sig: str) -> bool:
            hit = results.get((pub, data, sig))
            return verify_sm2(pub, data, sig) if hit is None else hit

        return lookup

    # -- stage 2 ----------------------------------------------------------------------------

    async def seen_before(
        self, items: Sequence[Incoming], verdicts: Sequence[Rejected | None]
    ) -> set[Key]:
        """Keys of the batch's passing records that ``ingest_seen`` holds (accepted by an
        earlier process, or evicted from the cache). May run for several batches at once:
        what the batches ahead accept is caught by the in-memory cache in :meth:`replays`."""
        seen = self.seen
        keys = {
            (identity_of(r), r.msg_id)
            for item, verdict in zip(items, verdicts, strict=True)
            if verdict is None and not isinstance(r := item.decoded, Rejected)
        }
        keys = {k for k in keys if k not in seen}
        if not keys:
            return set()

        async def query() -> set[Key]:
            async with driver_connection(self.engine) as conn:
                found = await conn.fetch(SEEN_SQL, [k[0] for k in keys], [k[1] for k in keys])
                return {(row[0], row[1]) for row in found}

        return await retry_db(query, what="replay check", log_to=log)

    def replays(
        self, items: Sequence[Incoming], verdicts: list[Rejected | None], known: set[Key]
    ) -> list[Key]:
        """Turn replays into rejections (in place): keys accepted before (the in-memory cache,
        ``known`` from :meth:`seen_before`) or earlier in the batch. Returns the keys of the
        accepted records, which are in the cache from now on. Call in arrival order."""
        batch_keys: set[Key] = set()
        accepted: list[Key] = []
        seen = self.seen
        for k, item in enumerate(items):
            r = item.decoded
            if verdicts[k] is not None or isinstance(r, Rejected):
                continue
            key = (identity_of(r), r.msg_id)
            if key in seen or key in batch_keys or key in known:
                verdicts[k] = replay(key)
            else:
                batch_keys.add(key)
                accepted.append(key)
        for key in accepted:
            seen.add(key)
        return accepted

    # -- stage 3 ----------------------------------------------------------------------------

    async def send(
        self, items: Sequence[Incoming], verdicts: Sequence[Rejected | None]
    ) -> list[Any]:
        """Hand the batch to Kafka; returns the futures to await (they raise if Kafka did not
        take it: then nothing of the batch may be acknowledged). Call in arrival order."""
        builders: dict[tuple[str, int], Any] = {}
        futures: list[Any] = []
        producer = self.producer
        partitions = self.partitions
        keyed: dict[tuple[str, int], tuple[bytes, list[bytes]]] = {}  # first key, values

        async def append(topic: str, part: int, key: bytes | None, value: bytes) -> None:
            builder = builders.get((topic, part))
            if builder is None:
                builder = builders[(topic, part)] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(builder, topic, partition=part))
                builder = builders[(topic, part)] = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit a Kafka batch")

        for item, verdict in zip(items, verdicts, strict=True):
            record = item.decoded
            if verdict is None and not isinstance(record, Rejected):
                topic = topics.TELEMETRY if isinstance(record, Telemetry) else topics.FIXES
                key = identity_of(record).encode()
                if not partitions.loaded(topic):
                    await partitions.load(producer, topic)
                part = partitions.of(topic, key)
                value = to_json(record, received_at=item.received_at)
                keyed.setdefault((topic, part), (key, []))[1].append(value)
                continue
            if item.redelivered and verdict is not None and verdict.reason == Reason.REPLAY:
                continue  # the broker's redelivery of what was already accepted
            assert verdict is not None
            if not partitions.loaded(topics.REJECTED):
                await partitions.load(producer, topics.REJECTED)
            part = partitions.spread(topics.REJECTED, item.mid)
            await append(topics.REJECTED, part, None, rejection_record(item, verdict))
        for (topic, part), (key, values) in keyed.items():
            for envelope in envelopes(values):
                await append(topic, part, key, envelope)
        for (topic, part), builder in builders.items():
            futures.append(await producer.send_batch(builder, topic, partition=part))
        return futures

    def count(self, items: Sequence[Incoming], verdicts: Sequence[Rejected | None]) -> None:
        c = self.counters
        for item, verdict in zip(items, verdicts, strict=True):
            if verdict is None:
                c.add("accepted")
            elif item.redelivered and verdict.reason == Reason.REPLAY:
                c.add(REDELIVERED)
            else:
                c.add(verdict.reason)

    # -- stage 4 ----------------------------------------------------------------------------

    async def remember(self, keys: Sequence[Key]) -> None:
        if not keys:
            return
        # in one order in every process: two gates inserting the same keys (a message sent
        # over MQTT and HTTP at once) in different orders could deadlock
        keys = sorted(keys)

        async def insert() -> None:
            async with driver_connection(self.engine) as conn:
                await conn.execute(REMEMBER_SQL, [k[0] for k in keys], [k[1] for k in keys])

        try:
            await retry_db(insert, what="remembering accepted ids", log_to=log)
        except Exception as exc:
            if not is_poison(exc):
                raise
            if len(keys) == 1:  # Kafka holds it already: only its replay protection is lost
                log.error("could not remember accepted id %r", keys[0], exc_info=exc)
                return
            half = len(keys) // 2
            await self.remember(keys[:half])
            await self.remember(keys[half:])

    # -- all stages, one batch (HTTP) -------------------------------------------------------

    async def admit(self, items: Sequence[Incoming]) -> list[Rejected | None]:
        """Check, forward and remember a batch; returns per item None (accepted) or why not.

        Returns only once Kafka holds every accepted record and every rejection.
        """
        verdicts, known = await self.screen(items)
        accepted = self.replays(items, verdicts, known)
        try:
            for fut in await self.send(items, verdicts):
                await fut  # raises if Kafka did not take it: the caller must not acknowledge
        except BaseException:
            for key in accepted:  # not accepted after all: the sender's retry must get in
                self.seen.discard(key)
            raise
        self.count(items, verdicts)
        await self.remember(accepted)
        await self.counters.maybe_flush(self.engine)
        return verdicts


def poisoned(exc: BaseException) -> Rejected:
    return Rejected(
        Reason.INTERNAL_ERROR,
        f"SiteWatch failed on this message ({type(exc).__name__}: "
        f"{pg_text(str(exc).splitlines()[0] if str(exc) else '')[:300]}); it is kept here",
    )


def replay(key: Key) -> Rejected:
    return Rejected(Reason.REPLAY, f"msg_id {key[1][:80]!r} of {key[0]!r} was already accepted")


def rejection_id(item: Incoming) -> str:
    """Idempotent across redelivery: an MQTT message the broker sends again after a bridge
    restart keeps its packet id, so its dead letter gets the same id (the sink keeps one)."""
    if item.source != "mqtt":
        return uuid.uuid4().hex
    h = hashlib.sha256()
    h.update(f"{item.source}\x00{item.topic}\x00{item.mid}\x00".encode("utf-8", "replace"))
    h.update(item.payload)
    return h.hexdigest()[:32]


def rejection_record(item: Incoming, why: Rejected) -> bytes:
    # PostgreSQL text cannot hold NUL: the excerpt shows it as U+FFFD like other bad bytes.
    excerpt = (
        item.payload[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    )
    return orjson.dumps(
        {
            "id": rejection_id(item),
            "source": item.source,
            "topic": pg_text(item.topic[:500]),
            "reason": why.reason,
            "message": pg_text(why.message[:1000]),
            "excerpt": excerpt,
            "received_at": item.received_at,
        }
    )


def now() -> float:
    return time.time()


__all__ = [
    "REDELIVERED",
    "Fix",
    "Gate",
    "Incoming",
    "SeenCache",
    "identity_of",
    "now",
    "rejection_id",
    "rejection_record",
]
