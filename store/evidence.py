"""Evidence chains, credit facts and engineer history in PostGIS (the computations are pure, in
`rules.evidence_chain` and `rules.credit`; this module only reads and writes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules import evidence_chain as chain
from rules import evidence_seals as seal_rules
from rules import evidence_verify as checks
from store.models import EvidenceHead
from wire.records import Record

VERIFY_CHUNK = 5000

# Bulk writes as arrays through unnest(): one cached statement whatever the batch size (a
# multi-row VALUES would be compiled anew for every batch).
ENTRY_COLUMNS = {
    "engineer_id": "text",
    "seq": "bigint",
    "kind": "text",
    "msg_id": "text",
    "ts": "double precision",
    "order_ts": "double precision",
    "local_date": "date",
    "canonical": "bytea",
    "prev_hash": "text",
    "hash": "text",
}
INSERT_ENTRIES_SQL = (
    f"INSERT INTO evidence_entries ({', '.join(ENTRY_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in ENTRY_COLUMNS.items())
    + ")"
)

HEADS_SQL = (
    "INSERT INTO evidence_heads (engineer_id, entries, head_hash) "
    "SELECT t.e, 0, t.h FROM unnest(CAST(:e AS text[]), CAST(:h AS text[])) AS t(e, h) "
    "ORDER BY t.e ON CONFLICT (engineer_id) DO UPDATE SET engineer_id = excluded.engineer_id "
    "RETURNING engineer_id, entries, head_hash, watermark"
)
HEADS_STATEMENT = text(HEADS_SQL)  # made once: text() parses it
# The new entries and the heads they move, one statement (a round trip less per batch). The
# heads exist (HEADS_SQL made or locked them): the upsert updates each through its primary
# key. As `UPDATE ... FROM unnest(...)` the planner hashed every engineer's head for every
# batch, however few it moved (13 ms for 300 of 20,000 heads, docs/BENCHMARKS.md).
WRITE_SQL = (
    f"WITH added AS ({INSERT_ENTRIES_SQL}) "
    "INSERT INTO evidence_heads AS h (engineer_id, entries, head_hash, watermark) "
    "SELECT * FROM unnest(CAST(:he AS text[]), CAST(:hn AS bigint[]), "
    "CAST(:hh AS text[]), CAST(:hw AS double precision[])) "
    "ON CONFLICT (engineer_id) DO UPDATE SET entries = excluded.entries, "
    "head_hash = excluded.head_hash, watermark = excluded.watermark, updated_at = now()"
)
WRITE_STATEMENT = text(WRITE_SQL)  # made once: text() parses it


def _entry(row: Any) -> chain.Entry:
    return chain.Entry(
        row.engineer_id,
        int(row.seq),
        row.kind,
        row.msg_id,
        float(row.ts),
        float(row.order_ts),
        bytes(row.canonical),
        row.prev_hash,
        row.hash,
    )


def _head(row: Any) -> chain.Head:
    return chain.Head(
        row.engineer_id,
        int(row.entries),
        row.head_hash,
        None if row.watermark is None else float(row.watermark),
    )


# --------------------------------------------------------------------------- append


@dataclass(frozen=True)
class FixesWritten:
    """What the batch's insert into `fixes` said, in the transaction that chains the batch.
    A fix's row and its chain entry are only ever written together, so a fix that was
    already in `fixes` is chained already, and a new one is not, unless retention had
    removed its earlier row: that happens only to fixes before `kept_after`."""

    tried: set[tuple[Any, ...]]  # (engineer_id, msg_id) of every fix the insert was given
    new: set[tuple[Any, ...]]  # those it inserted
    kept_after: float = -math.inf  # epoch seconds: fixes from then on were never trimmed


def kept_after(retention_days: int, now: float) -> float:
    """The event time from which no fix row was ever trimmed: retention deletes fixes older
    than `retention_days` (its cutoff never passed now minus that), and a day of margin is
    looked up rather than trusted. A retention shortened and then lengthened again breaks
    this: a fix it trimmed, sent again, is then refused by the chain's unique index and set
    aside as a dead letter, never chained twice."""
    return now - max(retention_days - 1, 0) * 86400.0 if retention_days > 0 else -math.inf


# One probe of ux_evidence_entries_record per candidate, whatever the statistics say (as a
# join, a table grown since its last ANALYZE could be hashed whole for every batch).
KNOWN_SQL = (
    "SELECT e.engineer_id, e.kind, e.msg_id "
    "FROM unnest(CAST(:e AS text[]), CAST(:k AS text[]), CAST(:m AS text[])) "
    "AS t(engineer_id, kind, msg_id) CROSS JOIN LATERAL (SELECT x.engineer_id, x.kind, "
    "x.msg_id FROM evidence_entries x WHERE x.engineer_id = t.engineer_id "
    "AND x.kind = t.kind AND x.msg_id = t.msg_id OFFSET 0) e"
)
KNOWN_STATEMENT = text(KNOWN_SQL)  # made once: text() parses it


async def _known(
    conn: AsyncConnection, cands: Sequence[chain.Candidate], fixes: FixesWritten | None
) -> set[tuple[str, str, str]]:
    """The candidates already chained. The batch's fixes are judged by what their insert
    said; the others (logs, and fixes old enough to have been trimmed) are looked up."""
    known: set[tuple[str, str, str]] = set()
    look_up: list[chain.Candidate] = []
    for c in cands:
        if fixes is not None and c.kind == "fix" and (c.engineer_id, c.msg_id) in fixes.tried:
            if (c.engineer_id, c.msg_id) not in fixes.new:
                known.add((c.engineer_id, c.kind, c.msg_id))
                continue
            if c.ts >= fixes.kept_after:
                continue
        look_up.append(c)
    if look_up:
        rows = await conn.execute(
            KNOWN_STATEMENT,
            {
                "e": [c.engineer_id for c in look_up],
                "k": [c.kind for c in look_up],
                "m": [c.msg_id for c in look_up],
            },
        )
        known.update((r.engineer_id, r.kind, r.msg_id) for r in rows)
    return known


# The entries of each engineer from a time on: one index range scan per engineer. As a plain
# join the planner cannot see the times in the array, guesses a third of the table for
# `order_ts >= t.ts` and scans all of it: 7 ms per batch at the start of the 60-minute soak,
# 850 ms at its end, the worker's whole capacity (docs/BENCHMARKS.md). OFFSET 0 keeps the
# subquery from being flattened into that join.
TAIL_SQL = """
SELECT e.* FROM unnest(CAST(:e AS text[]), CAST(:t AS double precision[])) AS t(engineer_id, ts)
CROSS JOIN LATERAL (
    SELECT * FROM evidence_entries x
    WHERE x.engineer_id = t.engineer_id AND x.order_ts >= t.ts
    OFFSET 0
) e
ORDER BY e.engineer_id, e.seq
"""
TAIL_STATEMENT = text(TAIL_SQL)  # made once: text() parses it


async def append(
    conn: AsyncConnection,
    records: Iterable[Record],
    *,
    allowed_lateness_s: float = 3600.0,
    timezone: str = "Asia/Shanghai",
    fixes: FixesWritten | None = None,
) -> int:
    """Chain the accepted fixes and logs of one worker batch (Kafka order), inside the sink
    transaction. Idempotent: records already chained are skipped, so a redelivered batch
    changes nothing (`fixes`, what the batch's insert into `fixes` said, spares looking
    them up). Locks each engineer's head row, so two writers never fork a chain.
    Returns the number of new entries."""
    cands = chain.candidates(records)
    if not cands:
        return 0
    tz = ZoneInfo(timezone)
    engineers = sorted({c.engineer_id for c in cands})
    # Each head, created when missing, locked until the transaction ends (two writers never
    # fork a chain): one statement. The no-op update is what locks an existing row (and
    # returns its newest version); it costs about what SELECT ... FOR UPDATE's lock did.
    heads = {
        r.engineer_id: _head(r)
        for r in await conn.execute(
            HEADS_STATEMENT,
            {"e": engineers, "h": [chain.genesis_hash(e) for e in engineers]},
        )
    }
    known = await _known(conn, cands, fixes)
    fresh: dict[str, list[chain.Candidate]] = defaultdict(list)
    for c in cands:
        if (c.engineer_id, c.kind, c.msg_id) not in known:
            fresh[c.engineer_id].append(c)
    if not fresh:
        return 0
    staging = {
        e: chain.stage(heads[e], new, lateness_s=allowed_lateness_s) for e, new in fresh.items()
    }
    min_order = {e: min(s.order_ts for s in staged) for e, (staged, _) in staging.items()}
    tails: dict[str, list[chain.Entry]] = defaultdict(list)
    # Only chains that may hold an entry at or after the new records' place: a record in
    # order (the usual case) comes after every stored entry, so its tail is empty.
    look_up = {e: t for e, t in min_order.items() if chain.may_have_tail(heads[e], t)}
    if look_up:
        tail_rows = await conn.execute(
            TAIL_STATEMENT, {"e": list(look_up), "t": list(look_up.values())}
        )
        for r in tail_rows:
            tails[r.engineer_id].append(_entry(r))
    deletes: list[tuple[str, int]] = []
    columns: dict[str, list[Any]] = {c: [] for c in ENTRY_COLUMNS}
    heads_out: dict[str, list[Any]] = {"he": [], "hn": [], "hh": [], "hw": []}
    added = 0
    for e, new in fresh.items():
        upd = chain.merge(heads[e], tails[e], *staging[e])
        assert upd.head is not None
        if upd.delete_from_seq is not None:
            deletes.append((e, upd.delete_from_seq))
        for x in upd.rows:
            columns["engineer_id"].append(x.engineer_id)
            columns["seq"].append(x.seq)
            columns["kind"].append(x.kind)
            columns["msg_id"].append(x.msg_id)
            columns["ts"].append(x.ts)
            columns["order_ts"].append(x.order_ts)
            columns["local_date"].append(dt.datetime.fromtimestamp(x.ts, tz).date())
            columns["canonical"].append(x.canonical)
            columns["prev_hash"].append(x.prev_hash)
            columns["hash"].append(x.hash)
        heads_out["he"].append(e)
        heads_out["hn"].append(upd.head.entries)
        heads_out["hh"].append(upd.head.hash)
        heads_out["hw"].append(upd.head.watermark)
        added += len(new)
    if deletes:
        await conn.execute(
            text(
                "DELETE FROM evidence_entries e "
                "USING unnest(CAST(:e AS text[]), CAST(:s AS bigint[])) AS t(engineer_id, seq) "
                "WHERE e.engineer_id = t.engineer_id AND e.seq >= t.seq"
            ),
            {"e": [d[0] for d in deletes], "s": [d[1] for d in deletes]},
        )
    await conn.execute(WRITE_STATEMENT, {**columns, **heads_out})
    return added


# --------------------------------------------------------------------------- read / verify


async def head(conn: AsyncConnection, engineer_id: str) -> chain.Head | None:
    row = (
        await conn.execute(select(EvidenceHead).where(EvidenceHead.engineer_id == engineer_id))
    ).first()
    return None if row is None else _head(row)


ENTRY_SQL = """
SELECT e.engineer_id, e.seq, e.kind, e.msg_id, e.ts, e.order_ts, e.local_date, e.canonical,
       e.prev_hash, e.hash, e.chained_at,
       coalesce(f.region_code, p.region_code) AS region_code
FROM evidence_entries e
LEFT JOIN fixes f ON e.kind = 'fix' AND f.engineer_id = e.engineer_id AND f.msg_id = e.msg_id
LEFT JOIN supervision_logs l
       ON e.kind = 'log' AND l.engineer_id = e.engineer_id AND l.msg_id = e.msg_id
LEFT JOIN projects p ON p.id = l.project_id
WHERE e.engineer_id = :engineer_id AND {where}
ORDER BY e.seq
LIMIT :limit
"""


async def entries(
    conn: AsyncConnection,
    engineer_id: str,
    *,
    date: dt.date | None = None,
    after_seq: int = 0,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Stored entries (with the region of their fact, for scoping), in seq order."""
    where = ["e.seq > :after_seq"]
    params: dict[str, Any] = {"engineer_id": engineer_id, "after_seq": after_seq, "limit": limit}
    if date is not None:
        where.append("e.local_date = :date")
        params["date"] = date
    result = await conn.execute(text(ENTRY_SQL.format(where=" AND ".join(where))), params)
    return [dict(r._mapping) for r in result]


VERIFY_SQL = """
SELECT e.engineer_id, e.seq, e.kind, e.msg_id, e.ts, e.order_ts, e.canonical, e.prev_hash,
       e.hash,
       coalesce(f.ts, l.ts) AS fact_ts,
       coalesce(ST_X(f.geom), ST_X(l.geom)) AS fact_lon,
       coalesce(ST_Y(f.geom), ST_Y(l.geom)) AS fact_lat,
       f.source AS fact_source, l.text AS fact_text, l.project_id AS fact_project_id,
       (f.msg_id IS NOT NULL OR l.msg_id IS NOT NULL) AS has_fact
FROM evidence_entries e
LEFT JOIN fixes f ON e.kind = 'fix' AND f.engineer_id = e.engineer_id AND f.msg_id = e.msg_id
LEFT JOIN supervision_logs l
       ON e.kind = 'log' AND l.engineer_id = e.engineer_id AND l.msg_id = e.msg_id
WHERE e.engineer_id = :engineer_id AND e.seq > :after_seq
ORDER BY e.seq
LIMIT :limit
"""


def _verify_row(r: Any) -> checks.VerifyRow:
    fact = None
    if r.has_fact:
        fact = checks.StoredFact(
            ts=r.fact_ts.timestamp(),
            lon=float(r.fact_lon),
            lat=float(r.fact_lat),
            source=r.fact_source,
            text=r.fact_text,
            project_id=r.fact_project_id,
        )
    return checks.VerifyRow(_entry(r), fact)


async def _verify_rows(conn: AsyncConnection, engineer_id: str) -> AsyncIterator[Sequence[Any]]:
    after = 0
    while True:
        rows = (
            await conn.execute(
                text(VERIFY_SQL),
                {"engineer_id": engineer_id, "after_seq": after, "limit": VERIFY_CHUNK},
            )
        ).all()
        if not rows:
            return
        yield rows
        after = int(rows[-1].seq)
        if len(rows) < VERIFY_CHUNK:
            return


async def one_snapshot(conn: AsyncConnection) -> None:
    """Make the transaction of `conn` read one snapshot (call before its first query).
    `verify` reads the entries in chunks, then the count and the head: under READ COMMITTED a
    batch the worker commits in between made a sound chain look broken (head_mismatch)."""
    await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


async def verify(
    conn: AsyncConnection,
    engineer_id: str,
    *,
    retention_days: float | None = None,
    seals: Sequence[seal_rules.Seal] = (),
    file_digest: Callable[[str], str | None] | None = None,
) -> checks.VerifyResult:
    """Recompute the engineer's chain from the genesis and check it against the stored head
    and fact rows (rules.evidence_verify.ChainVerifier), then against ``seals`` (a chain
    rewritten consistently after it was sealed: reason ``seal_mismatch``). Fact rows older
    than ``retention_days`` may be missing (trimmed); younger ones must be there. With
    ``file_digest``, a practice record's files must still hash to their names."""
    cutoff = (
        -math.inf
        if retention_days is None
        else dt.datetime.now(dt.UTC).timestamp() - retention_days * 86400.0
    )
    points = seal_rules.sealed_points(engineer_id, seals)
    verifier = checks.ChainVerifier(
        engineer_id, facts_required_after=cutoff, watch=points, file_digest=file_digest
    )
    async for rows in _verify_rows(conn, engineer_id):
        batch = [_verify_row(r) for r in rows]
        if file_digest is None:
            verifier.feed(batch)
        else:  # hashing stored files is disk and CPU work: off the event loop
            await asyncio.to_thread(verifier.feed, batch)
        if verifier.done:
            break
    stored = (
        await conn.execute(
            text("SELECT count(*) FROM evidence_entries WHERE engineer_id = :e"),
            {"e": engineer_id},
        )
    ).scalar_one()
    result = verifier.result(await head(conn, engineer_id), int(stored))
    if not seals:
        return result
    sealed = seal_rules.check_chain(points, verifier.at, verifier.count)
    result.seals = {"seals": len(seals), **sealed.as_dict()}
    if result.ok and not sealed.ok:
        result.ok = False
        result.broken_at = sealed.seq
        result.reason = "seal_mismatch"
        result.message = sealed.message
    return result


async def history(
    conn: AsyncConnection,
    engineer_id: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    limit: int,
) -> dict[str, list[dict[str, Any]]]:
    """An engineer's fixes, logs, site transitions and alerts (with their handling) with
    event time in [start, end), each with the region it belongs to (for scoping)."""
    params = {"e": engineer_id, "s": start, "t": end, "limit": limit}
    fixes = await conn.execute(
        text(
            "SELECT msg_id, ts, kind, source, acc_m, speed_kmh, battery, project_ids, "
            "region_code, ST_X(geom) AS lon, ST_Y(geom) AS lat, received_at FROM fixes "
            "WHERE engineer_id = :e AND ts >= :s AND ts < :t ORDER BY ts, msg_id LIMIT :limit"
        ),
        params,
    )
    logs = await conn.execute(
        text(
            "SELECT l.msg_id, l.ts, l.project_id, l.text, ST_X(l.geom) AS lon, "
            "ST_Y(l.geom) AS lat, p.region_code FROM supervision_logs l "
            "LEFT JOIN projects p ON p.id = l.project_id "
            "WHERE l.engineer_id = :e AND l.ts >= :s AND l.ts < :t ORDER BY l.ts, l.msg_id "
            "LIMIT :limit"
        ),
        params,
    )
    transitions = await conn.execute(
        text(
            "SELECT t.id, t.ts, t.project_id, t.kind, t.msg_id, p.region_code FROM transitions t "
            "LEFT JOIN projects p ON p.id = t.project_id "
            "WHERE t.engineer_id = :e AND t.ts >= :s AND t.ts < :t ORDER BY t.ts, t.id "
            "LIMIT :limit"
        ),
        params,
    )
    alerts = (
        await conn.execute(
            text(
                "SELECT id, type, status, region_code, project_id, device_id, ts, created_at, "
                "details FROM alerts WHERE engineer_id = :e AND ts >= :s AND ts < :t "
                "ORDER BY ts, id LIMIT :limit"
            ),
            params,
        )
    ).all()
    handling: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if alerts:
        for h in await conn.execute(
            text(
                "SELECT alert_id, status, note, actor, at FROM alert_history "
                "WHERE alert_id = ANY(:ids) ORDER BY id"
            ),
            {"ids": [a.id for a in alerts]},
        ):
            handling[h.alert_id].append(
                {"status": h.status, "note": h.note, "actor": h.actor, "at": h.at}
            )
    return {
        "fixes": [dict(r._mapping) for r in fixes],
        "logs": [dict(r._mapping) for r in logs],
        "transitions": [dict(r._mapping) for r in transitions],
        "alerts": [{**dict(a._mapping), "history": handling[a.id]} for a in alerts],
    }


__all__ = [
    "append",
    "entries",
    "head",
    "history",
    "verify",
]
