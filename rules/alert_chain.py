"""The chain of an alert's life: pure computation, no I/O (store.alert_events persists it).

Alerts are facts derived from the chained fixes, and their handling is what credit and
investigations read; so each alert has its own hash chain of events::

    hash_0 = SM3("alert:" || alert id)
    hash_n = SM3(hash_{n-1} || canonical_n)

``canonical_n`` is the canonical JSON (gm.algorithms.canonical_bytes) of the event: ``open``
(what the alert says: type, region, engineer, device, project, event time, details),
``revised`` (an out-of-order fix moved its event time and details back), and one event per
status change (``acked``, ``resolved``) with its actor and note: one per row of the alert's
history. Events of one alert are serialised by the alert's row lock, so no lock spans alerts.

Verification recomputes the links and then compares the stored alert and its history with
what the events say; seals (rules.evidence_seals) carry the head of every alert that changed
under the key ``alert/<id>`` ('/' is in no registered id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gm.algorithms import canonical_bytes, sm3_hex

SEAL_PREFIX = "alert/"
STATUS_EVENTS = ("open", "acked", "resolved")
NOTE_EVENT = "note"  # a regulator's note without a change of status (a history row too)


def genesis_hash(alert_id: str) -> str:
    return sm3_hex(f"alert:{alert_id}".encode())


def link(prev_hash: str, canonical: bytes) -> str:
    return sm3_hex(bytes.fromhex(prev_hash) + canonical)


def event_bytes(event: Mapping[str, Any]) -> bytes:
    try:
        return canonical_bytes(event)
    except (TypeError, ValueError):  # a detail that is not plain JSON must not stop the worker
        return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str).encode()


def open_event(alert: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "event": "open",
        "type": alert["type"],
        "region_code": alert["region_code"],
        "engineer_id": alert.get("engineer_id"),
        "device_id": alert.get("device_id"),
        "project_id": alert.get("project_id"),
        "ts": _epoch(alert["ts"]),
        "details": alert.get("details") or {},
        "actor": "system",
    }


def revised_event(ts: Any, details: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"event": "revised", "ts": _epoch(ts), "details": dict(details or {})}


def status_event(status: str, actor: str, note: str | None) -> dict[str, Any]:
    return {"event": status, "actor": actor, "note": note}


def _epoch(ts: Any) -> float:
    return float(ts.timestamp()) if hasattr(ts, "timestamp") else float(ts)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    canonical: bytes
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AlertCheck:
    alert_id: str
    ok: bool
    events: int
    head: str
    broken_at: int | None = None
    reason: str | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "alert_id": self.alert_id,
            "ok": self.ok,
            "events": self.events,
            "head": self.head,
        }
        if not self.ok:
            out |= {"broken_at": self.broken_at, "reason": self.reason, "message": self.message}
        return out


def check(
    alert_id: str,
    events: Sequence[StoredEvent],
    alert: Mapping[str, Any] | None,
    history: Sequence[Mapping[str, Any]],
    *,
    trimmed_ok: bool,
) -> AlertCheck:
    """``alert``: the stored alert row (None: gone); ``history``: its rows in order;
    ``trimmed_ok``: a resolved alert may be gone (retention)."""
    prev, decoded, problem = _links(alert_id, events)
    if problem is not None:
        seq, reason, message = problem
        return AlertCheck(alert_id, False, len(events), prev, seq, reason, message)
    if not decoded:
        return AlertCheck(alert_id, alert is None, 0, prev, 1, "not_chained", "no events")
    if decoded[0].get("event") != "open":
        return AlertCheck(alert_id, False, len(events), prev, 1, "not_chained", "no open event")
    statuses = [d for d in decoded if d.get("event") in STATUS_EVENTS]
    last = statuses[-1]["event"] if statuses else None
    n = len(events)
    if alert is None:
        if trimmed_ok and last == "resolved":
            return AlertCheck(alert_id, True, n, prev)
        return AlertCheck(alert_id, False, n, prev, n, "fact_missing", "the alert is gone")
    opened = decoded[0]
    for field in ("type", "region_code", "engineer_id", "device_id", "project_id"):
        if alert.get(field) != opened.get(field):
            return AlertCheck(
                alert_id, False, n, prev, 1, "fact_mismatch", f"its {field} is not what opened it"
            )
    timed = [d for d in decoded if d.get("event") in ("open", "revised")]
    chained_ts = timed[-1].get("ts")
    if not isinstance(chained_ts, int | float) or abs(_epoch(alert["ts"]) - chained_ts) > 1e-3:
        return AlertCheck(alert_id, False, n, prev, n, "fact_mismatch", "its event time moved")
    if alert.get("status") != last:
        return AlertCheck(
            alert_id,
            False,
            n,
            prev,
            n,
            "fact_mismatch",
            f"status {alert.get('status')}, chained {last}",
        )
    recorded = [d for d in decoded if d.get("event") in (*STATUS_EVENTS, NOTE_EVENT)]
    chained = [(d["event"], d.get("actor"), d.get("note")) for d in recorded]
    stored = [(h.get("status"), h.get("actor"), h.get("note")) for h in history]
    if chained != stored:
        first = next(
            (i for i, (a, b) in enumerate(zip(chained, stored, strict=False)) if a != b),
            min(len(chained), len(stored)),
        )
        return AlertCheck(
            alert_id,
            False,
            n,
            prev,
            None,
            "history_mismatch",
            f"history entry {first + 1} is not what was chained "
            f"({len(stored)} stored, {len(chained)} chained)",
        )
    return AlertCheck(alert_id, True, n, prev)


def _links(
    alert_id: str, events: Sequence[StoredEvent]
) -> tuple[str, list[dict[str, Any]], tuple[int, str, str] | None]:
    """The last good hash, the decoded events, and the first broken link if any."""
    prev = genesis_hash(alert_id)
    decoded: list[dict[str, Any]] = []
    for expected, e in enumerate(events, start=1):
        if e.seq != expected:
            return prev, decoded, (expected, "seq_gap", f"event {expected} is missing")
        if e.prev_hash != prev:
            return prev, decoded, (e.seq, "prev_mismatch", f"event {e.seq} does not link")
        digest = link(prev, e.canonical)
        if digest != e.hash:
            return prev, decoded, (e.seq, "hash_mismatch", f"event {e.seq}'s bytes were altered")
        decoded.append(_json(e.canonical))
        prev = digest
    return prev, decoded, None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:  # bytes that link but are no JSON: what they say matches nothing
        return {}
    return value if isinstance(value, dict) else {}


__all__ = [
    "SEAL_PREFIX",
    "AlertCheck",
    "StoredEvent",
    "check",
    "event_bytes",
    "genesis_hash",
    "link",
    "open_event",
    "revised_event",
    "status_event",
]
