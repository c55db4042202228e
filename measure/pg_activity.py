"""What PostgreSQL is doing while a soak runs: its maintenance (autovacuum, checkpoints) and
the statements that took it the most time (pg_stat_statements, on in the embedded cluster)."""

from __future__ import annotations

import threading
import time
from typing import Any

MAINTENANCE_SQL = (
    "SELECT coalesce(nullif(query, ''), backend_type) FROM pg_stat_activity "
    "WHERE backend_type = 'autovacuum worker' AND state IS DISTINCT FROM 'idle' "
    "UNION ALL SELECT 'checkpoint' FROM pg_stat_activity "
    "WHERE backend_type = 'checkpointer' AND wait_event IS DISTINCT FROM 'CheckpointerMain'"
)


def maintenance(database_url: str) -> list[str]:
    """PostgreSQL's autovacuum workers and checkpointer at work right now."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        return _maintenance_on(conn)


def _maintenance_on(conn: Any) -> list[str]:
    return sorted(str(r[0])[:80] for r in conn.execute(MAINTENANCE_SQL).fetchall())


STATEMENTS_SQL = (
    "SELECT queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 160), calls, total_exec_time, "
    "shared_blks_hit + shared_blks_read FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
    "WHERE datname = current_database())"
)
StatementTotals = dict[int, tuple[str, int, float, int]]


def statement_totals(database_url: str) -> StatementTotals:
    """pg_stat_statements' running totals: queryid -> (statement, calls, total ms, buffers)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        rows = conn.execute(STATEMENTS_SQL).fetchall()
    return {
        int(r[0]): (str(r[1]), int(r[2]), float(r[3]), int(r[4])) for r in rows if r[0] is not None
    }


def busiest_statements(
    before: StatementTotals, after: StatementTotals, top: int = 6
) -> list[list[object]]:
    """The statements that took the most time between two totals: [statement, calls, mean ms,
    total ms, buffers read or hit per call]."""
    deltas = []
    for qid, (query, calls, total, blocks) in after.items():
        calls0, total0, blocks0 = before.get(qid, (query, 0, 0.0, 0))[1:]
        if calls > calls0:
            spent, n = total - total0, calls - calls0
            deltas.append(
                [query, n, round(spent / n, 2), round(spent), round((blocks - blocks0) / n, 1)]
            )
    return sorted(deltas, key=lambda d: -float(d[3]))[:top]


def statements_table(statements: list[list[list[object]]], times: list[float]) -> list[str]:
    """Markdown: the busiest statement of the first, middle and last sampled minute."""
    minutes = [(t, st) for t, st in zip(times, statements, strict=True) if st]
    if not minutes:
        return []
    lines = [
        "",
        "PostgreSQL's busiest statement per minute (pg_stat_statements), first, middle and "
        "last minute:",
        "",
        "| t (s) | calls | mean ms | total ms | statement |",
        "|---|---|---|---|---|",
    ]
    for t, st in (minutes[0], minutes[len(minutes) // 2], minutes[-1]):
        query, calls, mean, total = st[0][:4]
        lines.append(f"| {t:.0f} | {calls} | {mean} | {total} | `{str(query)[:90]}` |")
    return lines


class MaintenanceSampler:
    """PostgreSQL's maintenance (what `maintenance` asks) sampled every `every_s` in a thread
    over one connection, so a latency spike can be matched with what PostgreSQL was doing at
    the time. A second without a successful sample is "unknown", never "none"."""

    def __init__(self, database_url: str, every_s: float = 0.5) -> None:
        self.database_url = database_url
        self.every_s = every_s
        self.samples: list[tuple[float, list[str]]] = []  # (time.time(), activities)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-maintenance", daemon=True)

    def start(self) -> MaintenanceSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        # a failed sample leaves its second unsampled: `during` says unknown
        try:
            conn = psycopg.connect(self.database_url, autocommit=True)
        except psycopg.Error:
            return
        with conn:
            while not self._stop.wait(self.every_s):
                try:
                    self.samples.append((time.time(), _maintenance_on(conn)))
                except psycopg.Error:
                    continue

    def during(self, start: float, second: int) -> list[str] | None:
        """What ran in second `second` counted from `start`; None when no sample was taken
        in that second (the sampler failed or was late)."""
        found: dict[str, None] | None = None
        for t, activities in self.samples:
            if int(t - start) == second:
                found = found or {}
                found.update(dict.fromkeys(activities))
        return None if found is None else list(found)
