"""Reconciliation of a load run (measure.loadgen): every acknowledged msg_id persisted once, the
alerts the plan triggers, read from PostGIS."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from measure.loadgen import RULE_TYPES, Plan


@dataclass
class Reconciliation:
    acked: int
    persisted_rows: int
    persisted_distinct: int
    missing: list[str]
    unexpected: list[str]
    alerts: set[str]
    alert_history_dupes: int

    @property
    def exact(self) -> bool:
        return (
            not self.missing
            and not self.unexpected
            and self.persisted_rows == self.persisted_distinct == self.acked
        )


_RUN_FIXES = "FROM fixes WHERE engineer_id LIKE %s AND msg_id LIKE %s"
_RUN_ALERTS = (
    "FROM alerts a WHERE a.engineer_id LIKE %s AND a.type = ANY(%s) "
    "AND a.ts >= to_timestamp(%s) AND a.ts <= to_timestamp(%s)"
)
# An alert the worker took back because a late fix changed its pair (geofence.tracking: the
# net events of any arrival order within the lateness are those of event-time order). A fault
# that reorders fixes (a restart, Mosquitto's journal) raises and retracts such alerts; what
# must match the fault-free run is the net set.
_NOT_RETRACTED = (
    " AND NOT (a.status = 'resolved' AND EXISTS (SELECT 1 FROM alert_history r "
    "WHERE r.alert_id = a.id AND r.actor = 'system' AND r.note LIKE 'retracted:%%'))"
)


def _run_params(plan: Plan) -> tuple[str, str]:
    return plan.prefix + "-E%", plan.run + "-%"


def _alert_params(plan: Plan) -> tuple[Any, ...]:
    return plan.prefix + "-E%", list(RULE_TYPES), plan.base_ts, plan.end_ts


def persisted_ids(database_url: str, plan: Plan) -> list[str]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT msg_id " + _RUN_FIXES, _run_params(plan)).fetchall()
    return [r[0] for r in rows]


def inserted_fixes(database_url: str) -> int:
    """Rows ever inserted into `fixes` (PostgreSQL's statistics, about a second behind): what a
    sampler may read every few seconds. Counting the run's rows scans the whole table, and at
    millions of rows that scan every 5 s took the CPU the pipeline needed (the first 60-minute
    soak); the exact count is for the reconciliation at the end."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = 'fixes'"
        ).fetchone()
    return int(row[0]) if row else 0


def persisted_count(database_url: str, plan: Plan) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) " + _RUN_FIXES, _run_params(plan)).fetchone()
    return int(row[0]) if row else 0


def alert_ids(database_url: str, plan: Plan) -> tuple[set[str], int]:
    """The run's alerts (the rule types a plan triggers, in its time range), less those the
    worker retracted, and how many have more than one 'open' entry in their history (an
    alert raised twice)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        ids = {
            r[0]
            for r in conn.execute(
                "SELECT a.id " + _RUN_ALERTS + _NOT_RETRACTED, _alert_params(plan)
            )
        }
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT h.alert_id FROM alert_history h WHERE h.status = 'open'"
            " AND h.alert_id IN (SELECT a.id " + _RUN_ALERTS + ") "
            "GROUP BY h.alert_id HAVING count(*) > 1) d",
            _alert_params(plan),
        ).fetchone()
    return ids, int(dupes[0]) if dupes else 0


def wait_persisted(
    database_url: str,
    plan: Plan,
    expected: int,
    *,
    timeout_s: float = 180.0,
    settle_s: float = 2.0,
    stall_s: float | None = None,
) -> int:
    """Wait until the run has `expected` fixes, then a little longer. Gives up after
    `timeout_s`, or after `stall_s` without any progress when that is set."""
    deadline = time.monotonic() + timeout_s
    n = persisted_count(database_url, plan)
    progressed = time.monotonic()
    while n < expected and time.monotonic() < deadline:
        if stall_s is not None and time.monotonic() - progressed > stall_s:
            break
        time.sleep(0.5)
        before, n = n, persisted_count(database_url, plan)
        if n > before:
            progressed = time.monotonic()
    time.sleep(settle_s)  # anything redelivered late would show up now
    return persisted_count(database_url, plan)


def reconcile(database_url: str, plan: Plan, acked: set[str]) -> Reconciliation:
    rows = persisted_ids(database_url, plan)
    distinct = set(rows)
    alerts, dupes = alert_ids(database_url, plan)
    return Reconciliation(
        acked=len(acked),
        persisted_rows=len(rows),
        persisted_distinct=len(distinct),
        missing=sorted(acked - distinct)[:20],
        unexpected=sorted(distinct - acked)[:20],
        alerts=alerts,
        alert_history_dupes=dupes,
    )
