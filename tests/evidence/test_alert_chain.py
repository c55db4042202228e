"""The chain of an alert's life without a stack (rules.alert_chain)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rules.alert_chain import (
    StoredEvent,
    check,
    event_bytes,
    genesis_hash,
    link,
    open_event,
    revised_event,
    status_event,
)

TS = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
ALERT = {
    "id": "cross_region_unfiled:E-1:P-1:2026-03-02",
    "type": "cross_region_unfiled",
    "region_code": "440305",
    "engineer_id": "E-1",
    "device_id": None,
    "project_id": "P-1",
    "ts": TS,
    "details": {"registered_region": "440100"},
    "status": "acked",
}
HISTORY = [
    {"status": "open", "actor": "system", "note": None},
    {"status": "acked", "actor": "account:wang", "note": "已联系"},
]


def _chain(events: list[dict[str, Any]]) -> list[StoredEvent]:
    prev, out = genesis_hash(ALERT["id"]), []
    for seq, event in enumerate(events, start=1):
        raw = event_bytes(event)
        digest = link(prev, raw)
        out.append(StoredEvent(seq, raw, prev, digest))
        prev = digest
    return out


EVENTS = [open_event(ALERT), status_event("acked", "account:wang", "已联系")]


def test_an_alert_that_is_what_its_events_say_verifies() -> None:
    result = check(ALERT["id"], _chain(EVENTS), ALERT, HISTORY, trimmed_ok=True)
    assert result.ok and result.events == 2


def test_a_revised_event_time_is_followed() -> None:
    earlier = TS - dt.timedelta(minutes=5)
    events = [*EVENTS, revised_event(earlier, {"registered_region": "440100"})]
    moved = {**ALERT, "ts": earlier}
    assert check(ALERT["id"], _chain(events), moved, HISTORY, trimmed_ok=True).ok
    assert not check(ALERT["id"], _chain(EVENTS), moved, HISTORY, trimmed_ok=True).ok


def test_each_kind_of_change_is_named() -> None:
    chain = _chain(EVENTS)
    cases = {
        "fact_mismatch": ({**ALERT, "status": "resolved"}, HISTORY),
        "history_mismatch": (ALERT, [HISTORY[0], {**HISTORY[1], "actor": "account:li"}]),
    }
    for reason, (alert, history) in cases.items():
        result = check(ALERT["id"], chain, alert, history, trimmed_ok=True)
        assert (result.ok, result.reason) == (False, reason), reason
    other_type = check(ALERT["id"], chain, {**ALERT, "type": "x"}, HISTORY, trimmed_ok=True)
    assert other_type.reason == "fact_mismatch" and "type" in str(other_type.message)
    altered = [
        chain[0],
        StoredEvent(2, chain[1].canonical + b" ", chain[1].prev_hash, chain[1].hash),
    ]
    assert check(ALERT["id"], altered, ALERT, HISTORY, trimmed_ok=True).reason == "hash_mismatch"
    assert check(ALERT["id"], chain[1:], ALERT, HISTORY, trimmed_ok=True).reason == "seq_gap"


def test_a_resolved_alert_may_be_trimmed_an_open_one_may_not_vanish() -> None:
    resolved = _chain([*EVENTS, status_event("resolved", "system", "telemetry resumed")])
    assert check(ALERT["id"], resolved, None, [], trimmed_ok=True).ok
    assert check(ALERT["id"], resolved, None, [], trimmed_ok=False).reason == "fact_missing"
    assert check(ALERT["id"], _chain(EVENTS), None, [], trimmed_ok=True).reason == "fact_missing"
