"""The evidence chain of an engineer: pure computation, no I/O (the store persists it).

Every accepted fix (check-in, OwnTracks, OsmAnd position) and supervision log of an engineer is
one entry of that engineer's chain (CONTRACT section 4)::

    hash_0 = SM3(UTF-8 engineer id)                       # the genesis, see genesis_hash()
    hash_n = SM3(hash_{n-1} || canonical_n)               # raw 32-byte digest || bytes

``canonical_n`` is the canonical JSON the sender sent (without ``sig``/``mac``: the bytes the
SM2 signature covers). Entries are numbered ``seq`` 1..n in *event order*: by ``(order_ts,
msg_id, kind)`` where ``order_ts`` is the event time clamped to the engineer's sealing horizon:

* the engineer's watermark ``W`` is the newest event time chained so far (it only grows);
* the horizon is ``W - allowed_lateness_s`` (the same window as ``geofence.tracking``);
* a record gets ``order_ts = max(ts, horizon)`` computed with the watermark *before* it,
  so a record never lands in front of an entry older than the horizon: those are sealed,
  their hashes are final. A record later than the lateness allowance is chained at the
  horizon (``late``), keeping its real event time in ``ts``.

A record inside the window that is older than the newest entries is inserted at its place and
the entries after it are re-linked (only entries inside the window, bounded by the lateness).

Determinism: ``order_ts`` depends only on the records before it in the engineer's Kafka
partition (the watermark is a running max), and the chain is the sorted list of all entries,
so any batching of the same log, and any redelivery (records already chained are skipped by
``(engineer, kind, msg_id)``), gives the same chain, byte for byte.

Verification (:class:`ChainVerifier`) recomputes every link from the genesis, checks that
``seq`` runs 1..n without gaps and in event order, that the stored head matches the last entry
(truncation), and that the stored fact rows (the fix's time and coordinates, the log's text)
are what the chained bytes decode to (:func:`decode_canonical`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from gm.algorithms import sm3_hex
from wire.records import Fix, Record, SupervisionLog

__all__ = [
    "COORD_TOLERANCE_DEG",
    "TS_TOLERANCE_S",
    "Candidate",
    "ChainUpdate",
    "Entry",
    "Head",
    "applied",
    "build_chain",
    "candidates",
    "genesis_hash",
    "link",
    "may_have_tail",
    "merge",
    "plan",
    "stage",
]

KINDS = ("fix", "log")
COORD_TOLERANCE_DEG = 1e-9  # ~0.1 mm: coordinates are stored as the same doubles
TS_TOLERANCE_S = 1e-3  # timestamptz keeps microseconds


@functools.lru_cache(maxsize=32_768)  # asked for every engineer of every batch
def genesis_hash(engineer_id: str) -> str:
    """hash_0 of an engineer's chain: SM3 of the UTF-8 engineer id, 64 lowercase hex."""
    return sm3_hex(engineer_id.encode("utf-8"))


def link(prev_hash: str, canonical: bytes) -> str:
    """hash_n = SM3(hash_{n-1} || canonical_n), the previous digest as its 32 raw bytes."""
    return sm3_hex(bytes.fromhex(prev_hash) + canonical)


# --------------------------------------------------------------------------- appending


# Candidate, Entry and Staged are made for every record a worker chains: named tuples, which
# are as immutable as frozen dataclasses and several times cheaper to make.
class Candidate(NamedTuple):
    """An accepted record to chain."""

    engineer_id: str
    kind: str  # 'fix' | 'log'
    msg_id: str
    ts: float  # event time, epoch seconds
    canonical: bytes


class Entry(NamedTuple):
    """One link of a chain (a stored row)."""

    engineer_id: str
    seq: int
    kind: str
    msg_id: str
    ts: float
    order_ts: float
    canonical: bytes
    prev_hash: str
    hash: str

    @property
    def key(self) -> tuple[float, str, str]:
        return (self.order_ts, self.msg_id, self.kind)

    @property
    def late(self) -> bool:
        return self.order_ts != self.ts


@dataclass(frozen=True, slots=True)
class Head:
    """The stored head of a chain: how many entries, the last hash, the watermark."""

    engineer_id: str
    entries: int
    hash: str
    watermark: float | None

    @classmethod
    def empty(cls, engineer_id: str) -> Head:
        return cls(engineer_id, 0, genesis_hash(engineer_id), None)

    def horizon(self, lateness_s: float) -> float | None:
        return None if self.watermark is None else self.watermark - lateness_s


class Staged(NamedTuple):
    candidate: Candidate
    order_ts: float

    @property
    def key(self) -> tuple[float, str, str]:
        return (self.order_ts, self.candidate.msg_id, self.candidate.kind)


@dataclass
class ChainUpdate:
    """What to write for one engineer: delete rows with ``seq >= delete_from_seq`` (None: none),
    insert ``rows``, store ``head``."""

    engineer_id: str
    delete_from_seq: int | None
    rows: list[Entry] = field(default_factory=list)
    head: Head | None = None


def candidates(records: Iterable[Record]) -> list[Candidate]:
    """The records that go into chains, in the order given, without repeats of one
    ``(engineer, kind, msg_id)`` (a redelivery inside one batch)."""
    out: list[Candidate] = []
    seen: set[tuple[str, str, str]] = set()
    for r in records:
        if isinstance(r, Fix):
            kind = "fix"
        elif isinstance(r, SupervisionLog):
            kind = "log"
        else:
            continue
        key = (r.engineer_id, kind, r.msg_id)
        if key in seen:
            continue
        seen.add(key)
        out.append(Candidate(r.engineer_id, kind, r.msg_id, float(r.ts), bytes(r.canonical)))
    return out


def stage(
    head: Head, new: Sequence[Candidate], *, lateness_s: float
) -> tuple[list[Staged], float | None]:
    """Give each new record (in arrival order, none already chained) its ``order_ts``;
    returns them and the new watermark."""
    watermark = head.watermark
    staged = []
    for c in new:
        order_ts = c.ts if watermark is None else max(c.ts, watermark - lateness_s)
        watermark = c.ts if watermark is None else max(watermark, c.ts)
        staged.append(Staged(c, order_ts))
    return staged, watermark


def may_have_tail(head: Head, order_ts: float) -> bool:
    """Whether the chain of `head` may hold an entry whose ``order_ts`` is at or after
    `order_ts`. Every entry's ``order_ts`` is at most the watermark when it was staged (the
    larger of its time and the watermark less the lateness, which is never negative), and
    the watermark only rises: so not when the chain is empty or `order_ts` is past its
    watermark. A head with entries and no watermark is not something `plan` writes: such a
    chain is read whole."""
    if head.entries == 0:
        return False
    return head.watermark is None or order_ts <= head.watermark


def plan(
    head: Head, tail: Sequence[Entry], new: Sequence[Candidate], *, lateness_s: float
) -> ChainUpdate:
    """Merge ``new`` records (arrival order, not yet chained) into a chain.

    ``tail`` is a suffix of the stored chain in ``seq`` order holding at least every entry
    whose ``order_ts`` is at or after the smallest ``order_ts`` of the staged records
    (:func:`stage`); more is harmless. Entries before the first new record keep their hashes.
    """
    return merge(head, tail, *stage(head, new, lateness_s=lateness_s))


def merge(
    head: Head, tail: Sequence[Entry], staged: Sequence[Staged], watermark: float | None
) -> ChainUpdate:
    """:func:`plan` for records :func:`stage` has placed already (the store stages once, to
    know which tails to read)."""
    update = ChainUpdate(head.engineer_id, None)
    if not staged:
        update.head = head
        return update
    merged: list[Entry | Staged] = sorted([*tail, *staged], key=lambda x: x.key)
    first_new = next(i for i, x in enumerate(merged) if isinstance(x, Staged))
    base_seq = tail[0].seq if tail else head.entries + 1
    if first_new < len(tail):
        update.delete_from_seq = tail[first_new].seq
    if first_new == 0:
        prev = tail[0].prev_hash if tail else head.hash
    else:
        prev = merged[first_new - 1].hash  # type: ignore[union-attr]
    for i in range(first_new, len(merged)):
        x = merged[i]
        if isinstance(x, Staged):
            c = x.candidate
            engineer_id, kind, msg_id, ts, order_ts, canonical = (
                c.engineer_id,
                c.kind,
                c.msg_id,
                c.ts,
                x.order_ts,
                c.canonical,
            )
        else:
            engineer_id, kind, msg_id, ts, order_ts, canonical = (
                x.engineer_id,
                x.kind,
                x.msg_id,
                x.ts,
                x.order_ts,
                x.canonical,
            )
        h = link(prev, canonical)
        update.rows.append(
            Entry(engineer_id, base_seq + i, kind, msg_id, ts, order_ts, canonical, prev, h)
        )
        prev = h
    update.head = Head(head.engineer_id, base_seq + len(merged) - 1, prev, watermark)
    return update


def build_chain(
    engineer_id: str, batches: Iterable[Sequence[Candidate]], *, lateness_s: float
) -> list[Entry]:
    """The whole chain from batches of records, in memory (tests, tools)."""
    head = Head.empty(engineer_id)
    chain: list[Entry] = []
    done: set[tuple[str, str]] = set()
    for batch in batches:
        fresh = []
        for c in batch:
            if (c.kind, c.msg_id) not in done:
                done.add((c.kind, c.msg_id))
                fresh.append(c)
        chain, head = applied(chain, plan(head, chain, fresh, lateness_s=lateness_s))
    return chain


def applied(chain: list[Entry], update: ChainUpdate) -> tuple[list[Entry], Head]:
    """A whole chain in memory with `update` applied, and its new head (tests, tools)."""
    if update.delete_from_seq is not None:
        chain = [e for e in chain if e.seq < update.delete_from_seq]
    assert update.head is not None
    return [*chain, *update.rows], update.head


# --------------------------------------------------------------------------- facts
