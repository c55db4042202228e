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

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gm.algorithms import sm3_hex
from wire.codecs import decode_mqtt, decode_osmand
from wire.fields import parse_json_object
from wire.owntracks import decode_owntracks_obj
from wire.records import Fix, Record, Rejected, SupervisionLog

__all__ = [
    "COORD_TOLERANCE_DEG",
    "Candidate",
    "ChainUpdate",
    "ChainVerifier",
    "Decoded",
    "Entry",
    "Head",
    "StoredFact",
    "VerifyResult",
    "candidates",
    "decode_canonical",
    "genesis_hash",
    "link",
    "plan",
    "stage",
]

KINDS = ("fix", "log")
COORD_TOLERANCE_DEG = 1e-9  # ~0.1 mm: coordinates are stored as the same doubles
TS_TOLERANCE_S = 1e-3  # timestamptz keeps microseconds


def genesis_hash(engineer_id: str) -> str:
    """hash_0 of an engineer's chain: SM3 of the UTF-8 engineer id, 64 lowercase hex."""
    return sm3_hex(engineer_id.encode("utf-8"))


def link(prev_hash: str, canonical: bytes) -> str:
    """hash_n = SM3(hash_{n-1} || canonical_n), the previous digest as its 32 raw bytes."""
    return sm3_hex(bytes.fromhex(prev_hash) + canonical)


# --------------------------------------------------------------------------- appending


@dataclass(frozen=True, slots=True)
class Candidate:
    """An accepted record to chain."""

    engineer_id: str
    kind: str  # 'fix' | 'log'
    msg_id: str
    ts: float  # event time, epoch seconds
    canonical: bytes


@dataclass(frozen=True, slots=True)
class Entry:
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


@dataclass(frozen=True, slots=True)
class Staged:
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


def plan(
    head: Head, tail: Sequence[Entry], new: Sequence[Candidate], *, lateness_s: float
) -> ChainUpdate:
    """Merge ``new`` records (arrival order, not yet chained) into a chain.

    ``tail`` is a suffix of the stored chain in ``seq`` order holding at least every entry
    whose ``order_ts`` is at or after the smallest ``order_ts`` of the staged records
    (:func:`stage`); more is harmless. Entries before the first new record keep their hashes.
    """
    staged, watermark = stage(head, new, lateness_s=lateness_s)
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
        update = plan(head, chain, fresh, lateness_s=lateness_s)
        if update.delete_from_seq is not None:
            chain = [e for e in chain if e.seq < update.delete_from_seq]
        chain.extend(update.rows)
        assert update.head is not None
        head = update.head
    return chain


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the chained bytes say: the record they decode to (None: undecodable)."""

    msg_id: str
    ts: float | None  # None when the sender sent no time (OsmAnd without timestamp)
    lon: float
    lat: float
    text: str | None = None
    project_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredFact:
    """The fact row an entry stands for (fixes / supervision_logs), as stored."""

    ts: float
    lon: float
    lat: float
    source: str | None = None  # fixes.source
    text: str | None = None
    project_id: str | None = None


_NOW = math.inf  # decoding stored bytes: nothing is "in the future"


def decode_canonical(
    engineer_id: str, kind: str, msg_id: str, canonical: bytes, source: str | None, ts: float
) -> Decoded | None:
    """Decode an entry's canonical bytes with the codec that accepted them; None if they do
    not decode (which, for bytes that were accepted, means they were altered). ``ts`` is the
    entry's time, the receive time an OsmAnd request without ``timestamp`` was given."""
    untimed = False
    try:
        if kind == "log":
            rec: Record = decode_mqtt(f"sitewatch/logs/{engineer_id}", canonical, now=_NOW)
        elif source == "checkin":
            rec = decode_mqtt(f"sitewatch/checkin/{engineer_id}", canonical, now=_NOW)
        elif source in ("owntracks", "owntracks-http"):
            prefix = f"ot:{engineer_id}:"
            device = msg_id[len(prefix) :].rsplit(":", 1)[0] if msg_id.startswith(prefix) else ""
            obj = parse_json_object(canonical)
            rec = decode_owntracks_obj(obj, engineer_id, device or "x", source=source, now=_NOW)
        elif source == "osmand":
            obj = parse_json_object(canonical)
            if isinstance(obj.get("location"), dict):
                untimed = obj["location"].get("timestamp") is None
                rec = decode_osmand({}, canonical, "application/json", now=ts if untimed else _NOW)
            else:
                untimed = obj.get("timestamp") in (None, "")
                rec = decode_osmand(obj, None, None, now=ts if untimed else _NOW)
        else:
            return None
    except (Rejected, ValueError, TypeError, AttributeError, RecursionError, OverflowError):
        return None
    if isinstance(rec, SupervisionLog):
        return Decoded(rec.msg_id, rec.ts, rec.lon, rec.lat, rec.text, rec.project_id)
    if isinstance(rec, Fix):
        return Decoded(rec.msg_id, None if untimed else rec.ts, rec.lon, rec.lat)
    return None


def fact_problem(
    engineer_id: str, kind: str, msg_id: str, ts: float, canonical: bytes, fact: StoredFact
) -> str | None:
    """None when the stored fact (and the entry's own ts) is what the canonical bytes say,
    else a sentence naming what differs."""
    d = decode_canonical(engineer_id, kind, msg_id, canonical, fact.source, ts)
    if d is None:
        return "the chained bytes no longer decode to an accepted record"
    if d.msg_id != msg_id:
        return f"the chained bytes carry msg_id {d.msg_id!r}, the entry says {msg_id!r}"
    if d.ts is not None and abs(d.ts - ts) > TS_TOLERANCE_S:
        return f"the entry's time {ts} differs from the chained time {d.ts}"
    if d.ts is not None and abs(d.ts - fact.ts) > TS_TOLERANCE_S:
        return f"the stored {kind}'s time {fact.ts} differs from the chained time {d.ts}"
    if abs(d.lon - fact.lon) > COORD_TOLERANCE_DEG or abs(d.lat - fact.lat) > COORD_TOLERANCE_DEG:
        return (
            f"the stored {kind}'s position ({fact.lon}, {fact.lat}) differs from the chained "
            f"position ({d.lon}, {d.lat})"
        )
    if kind == "log" and (d.text != fact.text or d.project_id != fact.project_id):
        return "the stored log's text or project differs from the chained log"
    return None


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True)
class VerifyRow:
    """One stored entry with the fact row it stands for (None: no such row)."""

    entry: Entry
    fact: StoredFact | None


@dataclass
class VerifyResult:
    engineer_id: str
    ok: bool
    entries: int  # entries stored
    verified: int  # entries verified before the first broken one (all when ok)
    head: str  # the last verified hash
    broken_at: int | None = None
    reason: str | None = None  # hash_mismatch, prev_mismatch, seq_gap, out_of_order, ...
    message: str | None = None
    msg_id: str | None = None
    kind: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "engineer_id": self.engineer_id,
            "ok": self.ok,
            "entries": self.entries,
            "verified": self.verified,
            "head": self.head,
            "genesis": genesis_hash(self.engineer_id),
        }
        if not self.ok:
            out["broken_at"] = self.broken_at
            out["broken"] = {
                "seq": self.broken_at,
                "reason": self.reason,
                "message": self.message,
                "msg_id": self.msg_id,
                "kind": self.kind,
            }
        return out


class ChainVerifier:
    """Feed stored entries in ``seq`` order (in chunks if you like), then ask for the result.

    Stops at the first broken entry: the links after it cannot be trusted anyway.
    ``facts_required_after`` (epoch s): an entry at or after it must have its fact row (older
    fact rows may have been trimmed by retention; the chain itself is never trimmed).
    """

    def __init__(self, engineer_id: str, *, facts_required_after: float = -math.inf) -> None:
        self.engineer_id = engineer_id
        self.prev = genesis_hash(engineer_id)
        self.count = 0
        self.last_key: tuple[float, str, str] | None = None
        self.facts_required_after = facts_required_after
        self.broken: tuple[int, str, str, Entry | None] | None = None

    @property
    def done(self) -> bool:
        return self.broken is not None

    def _break(self, seq: int, reason: str, message: str, entry: Entry | None) -> None:
        self.broken = (seq, reason, message, entry)

    def feed(self, rows: Iterable[VerifyRow]) -> None:
        for row in rows:
            if self.broken is not None:
                return
            e = row.entry
            expected = self.count + 1
            if e.seq != expected:
                self._break(
                    expected,
                    "seq_gap",
                    f"entry {expected} is missing (next stored entry is {e.seq})",
                    None,
                )
                return
            if e.prev_hash != self.prev:
                self._break(
                    e.seq,
                    "prev_mismatch",
                    f"entry {e.seq} links to {e.prev_hash[:16]}..., but entry {e.seq - 1} "
                    f"hashes to {self.prev[:16]}... (entries removed, inserted or reordered)",
                    e,
                )
                return
            h = link(self.prev, e.canonical)
            if h != e.hash:
                self._break(
                    e.seq,
                    "hash_mismatch",
                    f"entry {e.seq}'s bytes hash to {h[:16]}..., the stored hash is "
                    f"{e.hash[:16]}... (its content was altered)",
                    e,
                )
                return
            if self.last_key is not None and e.key < self.last_key:
                self._break(e.seq, "out_of_order", f"entry {e.seq} is before entry {e.seq - 1}", e)
                return
            if e.order_ts < e.ts:
                self._break(
                    e.seq, "out_of_order", f"entry {e.seq} is ordered before its own time", e
                )
                return
            if row.fact is None:
                if e.ts >= self.facts_required_after:
                    self._break(
                        e.seq,
                        "fact_missing",
                        f"the {e.kind} {e.msg_id!r} of entry {e.seq} is no longer stored",
                        e,
                    )
                    return
            else:
                problem = fact_problem(
                    self.engineer_id, e.kind, e.msg_id, e.ts, e.canonical, row.fact
                )
                if problem:
                    self._break(e.seq, "fact_mismatch", f"entry {e.seq}: {problem}", e)
                    return
            self.prev = h
            self.last_key = e.key
            self.count += 1

    def result(self, head: Head | None, stored: int | None = None) -> VerifyResult:
        """``head``: the stored head row (None: none); ``stored``: how many entries are stored
        (defaults to the number fed before a break)."""
        if self.broken is None and head is not None:
            if head.entries != self.count or head.hash != self.prev:
                seq = min(head.entries, self.count) + 1
                self._break(
                    seq,
                    "head_mismatch",
                    f"the chain head records {head.entries} entries ending in "
                    f"{head.hash[:16]}..., the stored entries are {self.count} ending in "
                    f"{self.prev[:16]}... (entries removed or added)",
                    None,
                )
        total = self.count if stored is None else stored
        if self.broken is None:
            return VerifyResult(self.engineer_id, True, total, self.count, self.prev)
        seq, reason, message, entry = self.broken
        return VerifyResult(
            self.engineer_id,
            False,
            total,
            self.count,
            self.prev,
            broken_at=seq,
            reason=reason,
            message=message,
            msg_id=entry.msg_id if entry else None,
            kind=entry.kind if entry else None,
        )
