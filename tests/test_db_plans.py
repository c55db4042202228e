"""The engines every process uses plan each statement for its actual parameters: with
PostgreSQL's generic plans, our joins against `unnest` of array parameters became sequential
scans of whole tables after five executions, and the worker's batches slowed down as the
evidence chain grew (found by `make soak`)."""

from __future__ import annotations

import asyncio

import psycopg
from sqlalchemy import text

from config.settings import Settings
from store.db import async_engine
from store.evidence import TAIL_SQL
from tests.stack_client import StackClient

TAIL = "EXPLAIN " + TAIL_SQL


def test_statements_keep_their_index_plans_after_many_executions(sw: StackClient) -> None:
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def plans() -> tuple[str, list[str]]:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
            out = []
            for _ in range(8):  # past the five custom plans after which a generic one may win
                rows = await conn.execute(text(TAIL), {"e": ["nobody"], "t": [0.0]})
                out.append("\n".join(r[0] for r in rows))
        await engine.dispose()
        return str(mode), out

    mode, explained = asyncio.run(plans())
    assert mode == "force_custom_plan"
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
