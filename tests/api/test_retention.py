"""store.retention trims what is older than the retention settings and keeps the rest.

The rows are dated in 1990 and `trim` is told that "now" is 1991-01-01, so the cutoffs fall
in a band no other test's data can be in (the stack is shared by the whole session)."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect

import psycopg

from config.settings import Settings
from store.db import async_engine
from store.retention import trim
from streams import worker
from tests.api.conftest import tag
from tests.stack_client import StackClient

NOW = dt.datetime(1991, 1, 1, tzinfo=dt.UTC)
OLD = NOW - dt.timedelta(days=200)  # older than both settings below
NEW = NOW - dt.timedelta(days=1)  # younger than both
RETENTION_DAYS, SEEN_IDS_DAYS = 100, 30


def _insert(sw: StackClient, t: str, when: dict[str, dt.datetime]) -> None:
    point = "SRID=4326;POINT(113.94 22.56)"
    with psycopg.connect(sw.endpoints["database"]) as conn:
        for age, ts in when.items():
            k = f"RET-{t}-{age}"
            conn.execute(
                "INSERT INTO fixes (engineer_id, msg_id, ts, local_date, geom, kind, source, "
                "project_ids, region_code) VALUES (%s, %s, %s, %s, %s, 'position', 'mqtt', '{}', "
                "'440305')",
                (k, k, ts, ts.date(), point),
            )
            conn.execute(
                "INSERT INTO telemetry (device_id, msg_id, ts, metrics) VALUES (%s, %s, %s, '{}')",
                (k, k, ts),
            )
            conn.execute(
                "INSERT INTO transitions (id, engineer_id, project_id, kind, ts, msg_id) "
                "VALUES (%s, %s, 'P', 'enter', %s, %s)",
                (k, k, ts, k),
            )
            conn.execute(
                "INSERT INTO owntracks_events (engineer_id, msg_id, ts, type, payload) "
                "VALUES (%s, %s, %s, 'lwt', '{}')",
                (k, k, ts),
            )
            conn.execute(
                "INSERT INTO supervision_logs (engineer_id, msg_id, project_id, ts, local_date, "
                "geom, text) VALUES (%s, %s, 'P', %s, %s, %s, '旁站记录')",
                (k, k, ts, ts.date(), point),
            )
            conn.execute(
                "INSERT INTO rejected_messages (id, source, topic, reason, message, excerpt, "
                "received_at) VALUES (%s, 'mqtt', %s, 'bad_json', 'x', 'x', %s)",
                (k, k, ts),
            )
            conn.execute(
                "INSERT INTO ingest_seen (identity, msg_id, seen_at) VALUES (%s, %s, %s)",
                (k, k, ts),
            )
            for status in ("resolved", "open"):
                conn.execute(
                    "INSERT INTO alerts (id, type, status, region_code, engineer_id, ts, details) "
                    "VALUES (%s, 'impossible_travel', %s, '440305', %s, %s, '{}')",
                    (f"{k}-{status}", status, k, ts),
                )
                conn.execute(
                    "INSERT INTO alert_history (alert_id, status, actor) VALUES (%s, %s, 'test')",
                    (f"{k}-{status}", status),
                )


def _left(sw: StackClient, t: str) -> dict[str, set[str]]:
    like = f"RET-{t}-%"
    queries = {
        "fixes": "SELECT msg_id FROM fixes WHERE msg_id LIKE %s",
        "telemetry": "SELECT msg_id FROM telemetry WHERE msg_id LIKE %s",
        "transitions": "SELECT id FROM transitions WHERE id LIKE %s",
        "owntracks_events": "SELECT msg_id FROM owntracks_events WHERE msg_id LIKE %s",
        "supervision_logs": "SELECT msg_id FROM supervision_logs WHERE msg_id LIKE %s",
        "rejected_messages": "SELECT id FROM rejected_messages WHERE id LIKE %s",
        "ingest_seen": "SELECT msg_id FROM ingest_seen WHERE msg_id LIKE %s",
        "alerts": "SELECT id FROM alerts WHERE id LIKE %s",
        "alert_history": "SELECT alert_id FROM alert_history WHERE alert_id LIKE %s",
    }
    return {
        name: {r[0].removeprefix(f"RET-{t}-") for r in sw.sql(q, like)}
        for name, q in queries.items()
    }


def test_trim_deletes_old_rows_and_keeps_new_ones(sw: StackClient) -> None:
    t = tag()
    seen_band = NOW - dt.timedelta(days=SEEN_IDS_DAYS + 10)  # only ingest_seen is past it
    _insert(sw, t, {"old": OLD, "new": NEW, "mid": seen_band})
    settings = Settings(
        database_url=sw.endpoints["database"],
        retention_days=RETENTION_DAYS,
        rejected_retention_days=RETENTION_DAYS,
        seen_ids_days=SEEN_IDS_DAYS,
    )

    async def run() -> dict[str, int]:
        engine = async_engine(settings)
        try:
            return await trim(engine, settings, now=NOW, batch=2)  # small batches: loops too
        finally:
            await engine.dispose()

    counts = asyncio.run(run())
    left = _left(sw, t)
    for table in ("fixes", "telemetry", "transitions", "owntracks_events", "supervision_logs"):
        assert left[table] == {"new", "mid"}, table
    assert left["rejected_messages"] == {"new", "mid"}
    assert left["ingest_seen"] == {"new"}  # its own, shorter setting
    # resolved alerts go with their history; open ones stay whatever their age
    assert left["alerts"] == {"old-open", "mid-open", "mid-resolved", "new-open", "new-resolved"}
    assert left["alert_history"] == left["alerts"]
    assert counts["fixes"] >= 1 and counts["ingest_seen"] >= 2 and counts["alerts"] >= 1

    # a second run finds nothing more of ours; retention_days = 0 keeps everything
    asyncio.run(run())
    assert _left(sw, t) == left
    keep_all = Settings(
        database_url=sw.endpoints["database"],
        retention_days=0,
        rejected_retention_days=0,
        seen_ids_days=0,
    )

    async def run_keep_all() -> dict[str, int]:
        engine = async_engine(keep_all)
        try:
            return await trim(engine, keep_all, now=dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
        finally:
            await engine.dispose()

    assert asyncio.run(run_keep_all()) == {}
    assert _left(sw, t) == left


def test_the_stream_worker_trims_every_hour() -> None:
    source = inspect.getsource(worker.build_app)
    assert "@app.timer(interval=3600.0)" in source and "trim_old_rows(" in source
