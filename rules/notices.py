"""Rectification notices (整改通知) and stop-work orders (CONTRACT §6.4, §6.5): their lifecycle,
the chain of their events, and `notice_overdue`. Pure: the store keeps the rows and events.

    issued -> open --rectify--> rectified --close--> closed
                \\______________close______________/      |
    reopen: rectified or closed -> open  <---------------/

`notice_overdue`: a notice neither rectified nor closed by its deadline, one per notice: it is
judged by when the notice was first rectified or closed (`settled_at`), so a worker that was
down when the deadline passed still raises it, and a late rectification does not hide it.
Every event is a link of the notice's own chain: hash_n = SM3(hash_{n-1} || canonical event),
from SM3("notice:" + id), like an alert's (rules.alert_chain)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gm.algorithms import canonical_bytes, sm3_hex
from rules.alerts import alert
from wire.codecs import NOTICE_KINDS
from wire.fields import parse_ts
from wire.records import Rejected

__all__ = [
    "ACTIONS",
    "NOTICE_KINDS",
    "SEVERITIES",
    "Due",
    "NotAllowed",
    "event",
    "fields_of",
    "genesis_hash",
    "live_message",
    "notice_row",
    "link",
    "next_status",
    "overdue_alerts",
]
SEVERITIES = ("low", "medium", "high")
# action -> (the states it may start from, the state it leads to)
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "rectify": (("open",), "rectified"),
    "close": (("open", "rectified"), "closed"),
    "reopen": (("rectified", "closed"), "open"),
}


class NotAllowed(ValueError):
    """The action does not apply to the notice's state; the message says why."""


MAX_TERM_S = 5 * 366 * 86400.0  # a deadline at most five years after the notice


def fields_of(obj: Mapping[str, Any], issued_ts: float, msg_id: str) -> dict[str, Any]:
    """A notice's own fields from its record's JSON: `deadline` (after the record, within five
    years), `severity`, `responsible`; raises `NotAllowed` saying what is wrong."""
    if "/" in msg_id:
        raise NotAllowed("a notice's msg_id may not hold '/' (it names the notice in URLs)")
    try:
        deadline = parse_ts(obj.get("deadline"), "deadline", now=float("inf"))
    except Rejected as why:
        raise NotAllowed(f"a notice needs its deadline: {why.message}") from None
    if not issued_ts < deadline <= issued_ts + MAX_TERM_S:
        raise NotAllowed("the deadline is after the notice, at most five years after it")
    severity = obj.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise NotAllowed(f"severity is one of {', '.join(SEVERITIES)}")
    responsible = obj.get("responsible")
    if responsible is not None and (not isinstance(responsible, str) or len(responsible) > 200):
        raise NotAllowed("responsible is a text of at most 200 characters")
    return {
        "deadline": dt.datetime.fromtimestamp(deadline, dt.UTC),
        "severity": severity,
        "responsible": responsible,
    }


def notice_row(record: Any, fields: Mapping[str, Any], region_code: str) -> dict[str, Any]:
    """The row of the notice a practice record (`wire.records.SupervisionLog`) opens."""
    return {
        "id": f"{record.engineer_id}:{record.msg_id}",
        "engineer_id": record.engineer_id,
        "msg_id": record.msg_id,
        "kind": record.kind,
        "project_id": record.project_id,
        "region_code": region_code,
        "text": record.text,
        "issued_at": dt.datetime.fromtimestamp(record.ts, dt.UTC),
        **fields,
    }


def live_message(notice: Mapping[str, Any]) -> dict[str, Any]:
    """The live `notice` message (CONTRACT §6.6) of a notice row as it is now."""
    shown = {
        k: (v.isoformat() if isinstance(v, dt.datetime) else v)
        for k, v in notice.items()
        if k not in ("msg_id", "updated_at", "overdue_raised_at")
    }
    return {
        "type": "notice",
        "id": notice["id"],
        "status": notice["status"],
        "region_code": notice["region_code"],
        "engineer_id": notice["engineer_id"],
        "project_id": notice["project_id"],
        "notice": shown,
    }


def next_status(status: str, action: str) -> str:
    starts, leads_to = ACTIONS[action]
    if status not in starts:
        raise NotAllowed(
            f"a {status} notice cannot be {leads_to} ({action} needs {' or '.join(starts)})"
        )
    return leads_to


def genesis_hash(notice_id: str) -> str:
    return sm3_hex(f"notice:{notice_id}".encode())


def link(prev_hash: str, event: Mapping[str, Any]) -> tuple[bytes, str]:
    """The event's canonical bytes and its hash after `prev_hash`."""
    data = canonical_bytes(dict(event))
    return data, sm3_hex(bytes.fromhex(prev_hash) + data)


def event(action: str, actor: str, at: dt.datetime, **details: Any) -> dict[str, Any]:
    return {"event": action, "actor": actor, "at": at.isoformat(), **details}


@dataclass(frozen=True)
class Due:
    id: str
    engineer_id: str  # who issued it
    project_id: str
    region_code: str
    deadline: dt.datetime
    settled_at: dt.datetime | None  # first rectified or closed
    severity: str | None = None
    responsible: str | None = None


def overdue_alerts(notices: Iterable[Due], now: dt.datetime) -> list[dict[str, Any]]:
    """`notice_overdue` for every notice whose deadline has passed at `now` without it having
    been rectified or closed by then. Identity: the notice."""
    out = []
    for n in notices:
        if n.deadline > now or (n.settled_at is not None and n.settled_at <= n.deadline):
            continue
        out.append(
            alert(
                f"notice_overdue:{n.id}",
                "notice_overdue",
                n.region_code,
                n.deadline,
                engineer_id=n.engineer_id,
                project_id=n.project_id,
                details={
                    "notice_id": n.id,
                    "deadline": n.deadline.isoformat(),
                    "severity": n.severity,
                    "responsible": n.responsible,
                    "settled_at": n.settled_at.isoformat() if n.settled_at else None,
                },
            )
        )
    return out
