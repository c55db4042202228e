"""How PostgreSQL plans SiteWatch's statements. The engines plan each statement for its actual
parameters by default: with generic plans, our joins against `unnest` of array parameters
became sequential scans of whole tables after five executions, and the worker's batches slowed
down as the evidence chain grew (found by `make soak`). The worker's engineer batches and the
bridge plan once per connection (store.db.GENERIC_PLANS), so each of their statements must
probe its index under both kinds of plan."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any, Literal

import psycopg
import pytest
from sqlalchemy import text

from config.settings import Settings
from devices.directory import DEVICES_SQL, ENGINEERS_SQL, RETIRED_PROJECTS_SQL
from ingest.gate import SEEN_SQL
from store.db import async_engine
from store.engineer_facts import FACTS_SQL, HISTORY_SQL
from store.engineer_states import LOAD_SQL, WINDOW_FIXES_SQL
from store.evidence import KNOWN_SQL, TAIL_SQL, WRITE_SQL
from store.queries import UNLOGGED_DAYS_SQL, attendance_sql
from tests.stack_client import StackClient

TAIL = "EXPLAIN " + TAIL_SQL
NAMED = re.compile(r"(?<![:\w]):(\w+)")  # SQLAlchemy's `:name` parameters, not `::type`


@pytest.mark.parametrize(
    ("plans", "mode"), [("custom", "force_custom_plan"), ("generic", "force_generic_plan")]
)
def test_statements_keep_their_index_plans_after_many_executions(
    sw: StackClient, plans: Literal["custom", "generic"], mode: str
) -> None:
    """Both kinds of engine: the default (custom plans) and the worker's engineer batches'
    (generic plans, store.db.GENERIC_PLANS)."""
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1, plans=plans)

    async def explain() -> tuple[str, list[str]]:
        async with engine.connect() as conn:
            shown = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
            out = []
            for _ in range(8):  # past the five custom plans after which a generic one may win
                rows = await conn.execute(text(TAIL), {"e": ["nobody"], "t": [0.0]})
                out.append("\n".join(r[0] for r in rows))
        await engine.dispose()
        return str(shown), out

    shown, explained = asyncio.run(explain())
    assert shown == mode
    assert all("Seq Scan on evidence_entries" not in p for p in explained), explained[-1]


def test_the_evidence_tail_scans_each_engineer_from_its_time_on(sw: StackClient) -> None:
    """The worker reads each batch's engineers' chain entries from a time on. As a plain join
    the planner guessed a third of the table and scanned all of it: 7 ms per batch at the start
    of the 60-minute soak, 850 ms at its end (docs/BENCHMARKS.md)."""
    with psycopg.connect(sw.owner_database, autocommit=True) as db:
        db.execute(
            "INSERT INTO evidence_entries (engineer_id, seq, kind, msg_id, ts, order_ts, "
            "local_date, canonical, prev_hash, hash) SELECT 'PLAN-' || (i % 100), i / 100, "
            "'fix', 'plan-' || i, i, i, DATE '2026-01-01', '\\x00', 'p', 'h' "
            "FROM generate_series(1, 200000) i"
        )
        db.execute("ANALYZE evidence_entries")
        try:
            plan = "\n".join(
                r[0]
                for r in db.execute(
                    "EXPLAIN " + TAIL_SQL.replace(":e", "%(e)s").replace(":t", "%(t)s"),
                    {"e": [f"PLAN-{k}" for k in range(50)], "t": [199_000.0] * 50},
                )
            )
        finally:
            db.execute("DELETE FROM evidence_entries WHERE engineer_id LIKE 'PLAN-%%'")
    assert "Seq Scan on evidence_entries" not in plan, plan
    assert "order_ts >= t.ts" in plan.split("Index Cond:")[1], plan
    assert "JIT" not in plan


def _psycopg(sql: str) -> str:
    """`:name` (SQLAlchemy) and `$n` (asyncpg) parameters as psycopg's `%(name)s`."""
    sql = re.sub(r"\$(\d+)", r"%(p\1)s", sql)
    return NAMED.sub(r"%(\1)s", sql)


def _generic_plan(db: psycopg.Connection, sql: str, params: dict[str, Any]) -> str:
    """The plan PostgreSQL makes once for a prepared statement whatever its parameters (as
    asyncpg prepares them, under `plan_cache_mode=force_generic_plan`)."""
    if re.search(r"\$\d", sql):  # asyncpg's positional parameters: p1, p2, ...
        names = sorted(params, key=lambda k: int(k[1:]))
        positional = sql
    else:
        names = list(dict.fromkeys(NAMED.findall(sql)))
        positional = NAMED.sub(lambda m: f"${names.index(m.group(1)) + 1}", sql)
    db.execute(f"PREPARE plan_probe AS {positional}")
    try:
        db.execute("SET plan_cache_mode = force_generic_plan")
        args = ", ".join(["%s"] * len(names))
        explain = psycopg.ClientCursor(db)  # values as literals: EXECUTE casts them
        explain.execute(f"EXPLAIN EXECUTE plan_probe({args})", [params[n] for n in names])
        return "\n".join(r[0] for r in explain)
    finally:
        db.execute("DEALLOCATE plan_probe")
        db.execute("RESET plan_cache_mode")


@pytest.mark.parametrize("plan", ["custom", "generic"])
@pytest.mark.parametrize("analyzed", ["empty", "full"])
def test_batch_statements_probe_their_index_whatever_the_statistics(
    sw: StackClient, analyzed: str, plan: str
) -> None:
    """Each batch's look-ups and head updates, on copies of their tables analysed empty and
    then filled (a new deployment, the bench) or analysed full: as joins the planner hashed
    or scanned the whole table for every batch (the replay check: 60,000 rows taken for
    9,500; the evidence heads' update: every engineer's head, whatever the statistics)."""
    n = 338  # a batch's worth of keys
    ids = [f"E{k}" for k in range(n)]
    msgs = [f"m{k}" for k in range(n)]
    # the tables each must not read whole (and a name, where a table has two): its statement
    # and parameters
    statements = {
        ("ingest_seen",): (SEEN_SQL, {"p1": ids, "p2": msgs}),
        ("evidence_entries",): (KNOWN_SQL, {"e": ids, "k": ["fix"] * n, "m": msgs}),
        ("engineer_states",): (LOAD_SQL.text, {"ids": ids}),
        ("engineers", "filings"): (FACTS_SQL.text, {"ids": ids}),
        ("cert_status_history",): (HISTORY_SQL.text, {"ids": ids}),
        ("engineers", "keys"): (ENGINEERS_SQL.text, {"ids": ids}),  # the bridge's directory
        ("projects", "retired"): (RETIRED_PROJECTS_SQL.text, {"ids": ids}),
        ("devices", "projects"): (DEVICES_SQL.text, {"ids": ids}),
        ("fixes", "projects"): (  # the worker's recomputed attendance (attendance_tallies)
            attendance_sql("true", keyed=True),
            {
                "k_e": ids,
                "k_p": ["P1"] * n,
                "k_d": [dt.date(2026, 1, 1)] * n,
                "max_gap_s": 900.0,
                "max_shift_s": 43200.0,
            },
        ),
        ("evidence_entries", "tail"): (TAIL_SQL, {"e": ids, "t": [1.0] * n}),
        ("fixes", "window"): (  # the track windows of engineers the worker has not met
            WINDOW_FIXES_SQL.text,
            {
                "e": ids,
                "d": [dt.date(2026, 1, 1)] * n,
                "t": [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * n,
                "u": [dt.datetime(2026, 1, 2, tzinfo=dt.UTC)] * n,
            },
        ),
        ("fixes", "unlogged"): (  # the days a batch closed (its logs: a small table here)
            UNLOGGED_DAYS_SQL.text,
            {"e": ids, "lo": [dt.date(2026, 1, 1)] * n, "hi": [dt.date(2026, 1, 2)] * n},
        ),
        ("evidence_heads",): (
            WRITE_SQL,
            {
                "engineer_id": ids,
                "seq": list(range(n)),
                "kind": ["fix"] * n,
                "msg_id": msgs,
                "ts": [1.0] * n,
                "order_ts": [1.0] * n,
                "local_date": [dt.date(2026, 1, 1)] * n,
                "canonical": [b"{}"] * n,
                "prev_hash": ["p"] * n,
                "hash": ["h"] * n,
                "he": ids,
                "hn": [1] * n,
                "hh": ["h"] * n,
                "hw": [1.0] * n,
            },
        ),
    }
    fill = {
        "ingest_seen": "INSERT INTO {t} (identity, msg_id) "
        "SELECT 'E' || (i % 20000), md5(i::text) FROM generate_series(1, 60000) i",
        "evidence_entries": "INSERT INTO {t} (engineer_id, seq, kind, msg_id, ts, order_ts, "
        "local_date, canonical, prev_hash, hash) SELECT 'E' || (i % 20000), i, 'fix', "
        "md5(i::text), i, i, DATE '2026-01-01', '\\x00', 'p', 'h' "
        "FROM generate_series(1, 60000) i",
        "engineer_states": "INSERT INTO {t} (engineer_id, state) "
        "SELECT 'E' || i, '{{}}' FROM generate_series(1, 20000) i",
        "evidence_heads": "INSERT INTO {t} (engineer_id, entries, head_hash) "
        "SELECT 'E' || i, 1, 'h' FROM generate_series(1, 20000) i",
        "engineers": "INSERT INTO {t} (id, name, registered_region, cert_status, ce_hours) "
        "SELECT 'E' || i, 'e', '440305', 'valid', 0 FROM generate_series(1, 20000) i",
        "filings": "INSERT INTO {t} (id, engineer_id, region_code, valid_from, valid_to) "
        "SELECT i, 'E' || i, '440305', DATE '2026-01-01', DATE '2026-12-31' "
        "FROM generate_series(1, 20000, 3) i",
        "cert_status_history": "INSERT INTO {t} (id, engineer_id, status, from_date) "
        "SELECT i, 'E' || i, 'valid', DATE '2026-01-01' FROM generate_series(1, 20000, 2) i",
        "fixes": "INSERT INTO {t} (engineer_id, msg_id, ts, local_date, geom, kind, source, "
        "project_ids, region_code) SELECT 'E' || (i % 20000), 'm' || i, now(), "
        "DATE '2026-01-01', 'SRID=4326;POINT(113 22)', 'position', 'mqtt', "
        "ARRAY['P1', 'P2'], '440305' FROM generate_series(1, 200000) i",
        "devices": "INSERT INTO {t} (id, project_id, kind, report_interval_s, thresholds, "
        "hmac_key_enc) SELECT 'E' || i, 'P' || (i % 10000), 'dust', 60, '{{}}', '\\x00' "
        "FROM generate_series(1, 20000) i",
        "projects": "INSERT INTO {t} (id, name, region_code, crs, engineer_ids, buffer_m, "
        "properties, geom) SELECT 'P' || i, 'p', '440305', 'wgs84', '{{}}', 0, '{{}}', "
        "'SRID=4326;MULTIPOLYGON(((113 22,113.1 22,113.1 22.1,113 22.1,113 22)))' "
        "FROM generate_series(1, 10000) i",
    }
    plans = {}
    with psycopg.connect(sw.owner_database, autocommit=True) as db:
        db.execute("DROP SCHEMA IF EXISTS plan_stats CASCADE")
        db.execute("CREATE SCHEMA plan_stats")
        try:
            for table, rows in fill.items():
                copy = f"plan_stats.{table}"
                db.execute(f"CREATE TABLE {copy} (LIKE public.{table} INCLUDING ALL)")
                if analyzed == "empty":
                    db.execute(f"ANALYZE {copy}")
                db.execute(rows.format(t=copy))
                if analyzed == "full":
                    db.execute(f"ANALYZE {copy}")
            db.execute("SET search_path = plan_stats, public")
            for tables, (sql, params) in statements.items():
                if plan == "generic":
                    plans[tables] = _generic_plan(db, sql, params)
                else:
                    explained = db.execute("EXPLAIN " + _psycopg(sql), params)
                    plans[tables] = "\n".join(r[0] for r in explained)
        finally:
            db.execute("DROP SCHEMA plan_stats CASCADE")
    scanned = {
        tables: plan
        for tables, plan in plans.items()
        if any(f"Seq Scan on {t}" in plan for t in tables)
        or ("Hash Join" in plan or "Hash Semi" in plan)
        or "Index" not in plan
    }
    assert not scanned, "\n\n".join(scanned.values())


def test_the_embedded_postgis_keeps_checkpoints_rare_and_small(sw: StackClient) -> None:
    """Checkpoint storms stalled the worker's batches (docs/reliability.md): the embedded
    cluster compresses full-page images and checkpoints after 2 GB of WAL."""
    settings = dict(
        sw.sql(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
            "WHERE name IN ('wal_compression', 'max_wal_size', 'synchronous_commit', 'jit')"
        )
    )
    assert settings == {
        "wal_compression": "lz4",
        "max_wal_size": "2048MB",
        "synchronous_commit": "off",
        "jit": "off",
    }


def test_fixes_pay_only_for_the_indexes_their_queries_use(sw: StackClient) -> None:
    """A GiST index on `fixes.geom` served no query, yet its insertions and the whole-index
    scan of every insert-triggered vacuum grew with the table (lag bumps in the 60-minute
    soak, docs/BENCHMARKS.md); the tables with a row per fix vacuum in small steps."""
    methods = dict(
        sw.sql(
            "SELECT c.relname, am.amname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
            "WHERE i.indrelid = 'fixes'::regclass"
        )
    )
    assert set(methods.values()) == {"btree"}, methods
    for table in ("fixes", "evidence_entries", "ingest_seen"):  # a row per fix, each
        options = sw.sql("SELECT reloptions FROM pg_class WHERE relname = %s", table)[0][0]
        assert "autovacuum_vacuum_insert_threshold=100000" in options, table


def test_analyze_skips_the_geometry_of_fixes(sw: StackClient) -> None:
    """PostGIS's histogram of `fixes.geom` was 3.4 of the 4.2 s of CPU of an automatic
    ANALYZE (migration 0028), and no query filters fixes by space; the columns that queries
    filter on keep their statistics."""
    targets = dict(
        sw.sql(
            "SELECT attname, attstattarget FROM pg_attribute "
            "WHERE attrelid = 'fixes'::regclass AND attnum > 0 AND NOT attisdropped"
        )
    )
    assert targets["geom"] == 0
    assert {name for name, target in targets.items() if target == 0} == {"geom"}, targets
