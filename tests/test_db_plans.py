"""The engines every process uses plan each statement for its actual parameters: with
PostgreSQL's generic plans, our joins against `unnest` of array parameters became sequential
scans of whole tables after five executions, and the worker's batches slowed down as the
evidence chain grew (found by `make soak`)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from config.settings import Settings
from store.db import async_engine
from tests.stack_client import StackClient

TAIL = (
    "EXPLAIN SELECT e.* FROM evidence_entries e "
    "JOIN unnest(CAST(:e AS text[]), CAST(:t AS double precision[])) AS t(engineer_id, ts) "
    "ON e.engineer_id = t.engineer_id AND e.order_ts >= t.ts"
)


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


def test_the_embedded_postgis_keeps_checkpoints_rare_and_small(sw: StackClient) -> None:
    """Checkpoint storms stalled the worker's batches (docs/reliability.md): the embedded
    cluster compresses full-page images and checkpoints after 2 GB of WAL."""
    settings = dict(
        sw.sql(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
            "WHERE name IN ('wal_compression', 'max_wal_size', 'synchronous_commit')"
        )
    )
    assert settings == {
        "wal_compression": "lz4",
        "max_wal_size": "2048MB",
        "synchronous_commit": "off",
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
