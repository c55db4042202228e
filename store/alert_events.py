"""An alert's history rows and the chain of its events (rules.alert_chain), always written
together in the caller's transaction. Callers hold the alert's row lock (they inserted or
updated the alert in the same transaction), which serialises the events of one alert."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from rules import alert_chain
from rules.alert_chain import NOTE_EVENT
from rules.evidence_seals import Seal, SealedHead, check_chain, sealed_points
from store.models import Alert, AlertEvent, AlertHistory

HEADS_SQL = text(
    "SELECT DISTINCT ON (alert_id) alert_id, seq, hash FROM alert_events "
    "WHERE alert_id = ANY(:ids) ORDER BY alert_id, seq DESC"
)
CHANGED_SQL = text(
    "SELECT DISTINCT ON (alert_id) alert_id, seq, hash FROM alert_events "
    "WHERE chained_at >= :since ORDER BY alert_id, seq DESC"
)


async def _chain(conn: AsyncConnection, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
    if not events:
        return
    ids = sorted({alert_id for alert_id, _ in events})
    heads = {r.alert_id: (int(r.seq), r.hash) for r in await conn.execute(HEADS_SQL, {"ids": ids})}
    # an alert raised before alerts were chained starts its chain with what it says now
    unchained = [i for i in ids if i not in heads]
    first = {alert_id: event for alert_id, event in reversed(events)}
    older = [i for i in unchained if first[i]["event"] != "open"]
    if older:
        rows_now = await conn.execute(select(Alert).where(Alert.id.in_(older)))
        opening = [(r.id, alert_chain.open_event(dict(r._mapping))) for r in rows_now]
        events = [*opening, *events]
    rows = []
    for alert_id, event in events:
        seq, prev = heads.get(alert_id, (0, alert_chain.genesis_hash(alert_id)))
        canonical = alert_chain.event_bytes(event)
        digest = alert_chain.link(prev, canonical)
        rows.append(
            {
                "alert_id": alert_id,
                "seq": seq + 1,
                "event": event["event"],
                "canonical": canonical,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        heads[alert_id] = (seq + 1, digest)
    await conn.execute(insert(AlertEvent), rows)


async def opened(conn: AsyncConnection, alerts: Sequence[Mapping[str, Any]]) -> None:
    """New alerts: their first history row and their `open` event."""
    if not alerts:
        return
    await conn.execute(
        insert(AlertHistory),
        [{"alert_id": a["id"], "status": "open", "note": None, "actor": "system"} for a in alerts],
    )
    await _chain(conn, [(a["id"], alert_chain.open_event(a)) for a in alerts])


async def changed(
    conn: AsyncConnection, alert_ids: Sequence[str], status: str, note: str | None, actor: str
) -> None:
    """A status change of each alert: a history row and its event."""
    if not alert_ids:
        return
    await conn.execute(
        insert(AlertHistory),
        [{"alert_id": i, "status": status, "note": note, "actor": actor} for i in alert_ids],
    )
    await _chain(conn, [(i, alert_chain.status_event(status, actor, note)) for i in alert_ids])


async def noted(conn: AsyncConnection, alert_id: str, note: str, actor: str) -> None:
    """A note on the alert, its status unchanged: a history row and its event."""
    await conn.execute(
        insert(AlertHistory),
        [{"alert_id": alert_id, "status": NOTE_EVENT, "note": note, "actor": actor}],
    )
    await _chain(conn, [(alert_id, alert_chain.status_event(NOTE_EVENT, actor, note))])


async def revised(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Alerts whose event time and details moved back (an out-of-order fix): chained only."""
    await _chain(
        conn, [(r["id"], alert_chain.revised_event(r["ts"], r.get("details"))) for r in rows]
    )


async def changed_heads(conn: AsyncConnection, since: dt.datetime) -> list[SealedHead]:
    """The head of every alert chain that moved since `since`, as seals name them."""
    rows = await conn.execute(CHANGED_SQL, {"since": since})
    return [SealedHead(alert_chain.SEAL_PREFIX + r.alert_id, int(r.seq), r.hash) for r in rows]


async def verify(
    conn: AsyncConnection,
    alert_id: str,
    *,
    retention_days: float,
    seals: Sequence[Seal] = (),
) -> dict[str, object]:
    """The alert's chain, its stored row and history against it, and the seals."""
    events = [
        alert_chain.StoredEvent(int(r.seq), bytes(r.canonical), r.prev_hash, r.hash)
        for r in await conn.execute(
            select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.seq)
        )
    ]
    row = (await conn.execute(select(Alert).where(Alert.id == alert_id))).first()
    history = [
        dict(h._mapping)
        for h in await conn.execute(
            select(AlertHistory.status, AlertHistory.actor, AlertHistory.note)
            .where(AlertHistory.alert_id == alert_id)
            .order_by(AlertHistory.id)
        )
    ]
    result = alert_chain.check(
        alert_id,
        events,
        dict(row._mapping) if row is not None else None,
        history,
        trimmed_ok=retention_days > 0,
    )
    out = result.as_dict()
    if seals:
        points = sealed_points(alert_chain.SEAL_PREFIX + alert_id, seals)
        recomputed = {e.seq: e.hash for e in events} if result.ok else {}
        sealed = check_chain(points, recomputed, len(events) if result.ok else 0)
        out["seals"] = {"seals": len(seals), **sealed.as_dict()}
        if result.ok and not sealed.ok:
            out |= {
                "ok": False,
                "broken_at": sealed.seq,
                "reason": "seal_mismatch",
                "message": sealed.message,
            }
    return out
