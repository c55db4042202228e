"""Verification of an engineer's evidence chain (rules.evidence_chain): every entry's hash
recomputed, its canonical bytes decoded again with the codec that accepted them and compared
with the fact row it stands for."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from rules.evidence_chain import (
    COORD_TOLERANCE_DEG,
    TS_TOLERANCE_S,
    Entry,
    Head,
    genesis_hash,
    link,
)
from wire.codecs import decode_mqtt, decode_osmand, decode_record
from wire.fields import parse_json_object
from wire.owntracks import decode_owntracks_obj
from wire.records import Fix, Record, Rejected, SupervisionLog


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the chained bytes say: the record they decode to (None: undecodable)."""

    msg_id: str
    ts: float | None  # None when the sender sent no time (OsmAnd without timestamp)
    lon: float
    lat: float
    text: str | None = None
    project_id: str | None = None
    files: tuple[str, ...] = ()  # a practice record's files, by SM3


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
            rec: Record = decode_record(parse_json_object(canonical), engineer_id, now=_NOW)
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
        files = tuple(a.sm3 for a in rec.files)
        return Decoded(rec.msg_id, rec.ts, rec.lon, rec.lat, rec.text, rec.project_id, files)
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
    seals: dict[str, object] | None = None  # the check against the seals, when there are any

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
        if self.seals is not None:
            out["seals"] = self.seals
        return out


class ChainVerifier:
    """Feed stored entries in ``seq`` order (in chunks if you like), then ask for the result.

    Stops at the first broken entry: the links after it cannot be trusted anyway.
    ``facts_required_after`` (epoch s): an entry at or after it must have its fact row (older
    fact rows may have been trimmed by retention; the chain itself is never trimmed).
    ``watch``: seqs whose recomputed hash is kept in ``at`` (the sealed ones).
    ``file_digest``: the SM3 of what is stored under a file's name now (None: nothing is); with
    it, every file a practice record names must still hash to its name.
    """

    def __init__(
        self,
        engineer_id: str,
        *,
        facts_required_after: float = -math.inf,
        watch: Collection[int] = (),
        file_digest: Callable[[str], str | None] | None = None,
    ) -> None:
        self.engineer_id = engineer_id
        self.file_digest = file_digest
        self.watch = frozenset(watch)
        self.at: dict[int, str] = {}
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
            problem = self._file_problem(e)
            if problem:
                self._break(e.seq, "file_mismatch", f"entry {e.seq}: {problem}", e)
                return
            self.prev = h
            self.last_key = e.key
            self.count += 1
            if e.seq in self.watch:
                self.at[e.seq] = h

    def _file_problem(self, e: Entry) -> str | None:
        if self.file_digest is None or e.kind != "log":
            return None
        if b'"files"' not in e.canonical and b'"attachments"' not in e.canonical:
            return None
        decoded = decode_canonical(self.engineer_id, e.kind, e.msg_id, e.canonical, None, e.ts)
        for sm3 in decoded.files if decoded else ():
            now = self.file_digest(sm3)
            if now is None:
                return f"file {sm3[:16]}... of {e.msg_id!r} is no longer stored"
            if now != sm3:
                return f"file {sm3[:16]}... of {e.msg_id!r} now hashes to {now[:16]}... (altered)"
        return None

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


__all__ = [
    "ChainVerifier",
    "Decoded",
    "StoredFact",
    "VerifyResult",
    "VerifyRow",
    "decode_canonical",
    "fact_problem",
]
