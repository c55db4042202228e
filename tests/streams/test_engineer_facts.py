"""The worker's engineer facts cache (store.engineer_facts) on the stack's PostGIS: read once
per engineer, read again when a filing is added through the API or when they are too old,
and an engineer registered after a miss is found on the next batch."""

from __future__ import annotations

import asyncio
import datetime as dt

from config.settings import Settings
from store import cache_versions, engineer_facts, fence_cache
from store.db import async_engine
from store.engineer_facts import EngineerFactsCache
from tests.stack_client import StackClient
from tests.streams.scenario import make_engineer, make_filing, make_project, tag


def test_facts_are_cached_until_a_filing_is_added(sw: StackClient) -> None:
    t = tag()
    a, b, late = f"EF-A-{t}", f"EF-B-{t}", f"EF-L-{t}"
    make_engineer(sw, a, region="440305")
    make_engineer(sw, b, region="310104")
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def scenario() -> None:
        cache = EngineerFactsCache(engine)
        first = await cache.get({a, b, late})
        assert set(first) == {a, b}  # `late` is not registered yet
        assert first[a].registered_region == "440305" and first[a].filings == ()
        assert cache.reads == 3
        assert await cache.get({a, b}) == {a: first[a], b: first[b]}
        assert cache.reads == 3  # served from memory

        make_engineer(sw, late)
        assert set(await cache.get({late})) == {late}  # a miss is asked again
        assert cache.reads == 4

        make_filing(sw, b, "440300", "2026-03-01", "2026-03-31")
        again = await cache.get({b})
        assert cache.reads == 5  # the new filing invalidated the cache
        assert again[b].filed_for("440305", dt.date(2026, 3, 2))
        assert not first[b].filed_for("440305", dt.date(2026, 3, 2))

        aged = EngineerFactsCache(engine, max_age_s=0.0)
        await aged.get({a})
        await aged.get({a})
        assert aged.reads == 2  # too old: read again
        await engine.dispose()

    asyncio.run(scenario())


def test_one_statement_reads_both_cache_versions_and_each_moves_with_its_own_changes(
    sw: StackClient,
) -> None:
    """store.cache_versions: the fences' version moves with a new project, not with a new
    filing; the facts' version with a new engineer or filing, not with a new project; and
    each is what its cache would have read itself."""
    t = tag()
    engine = async_engine(Settings(database_url=sw.endpoints["database"]), pool_size=1)

    async def read() -> tuple[tuple[int, int], tuple[int, int]]:
        async with engine.connect() as conn:
            both = await cache_versions.read(conn)
            own = (
                int((await conn.execute(fence_cache.VERSION_SQL)).scalar_one()),
                int((await conn.execute(engineer_facts.VERSION_SQL)).scalar_one()),
            )
        return both, own

    async def scenario() -> None:
        try:
            await moves()
        finally:
            await engine.dispose()

    async def moves() -> None:
        start, own = await read()
        assert start == own
        make_project(sw, f"CV-P-{t}")
        after_project, own = await read()
        assert after_project == own
        assert after_project[0] > start[0] and after_project[1] == start[1]
        make_engineer(sw, f"CV-E-{t}")
        make_filing(sw, f"CV-E-{t}", "440300", "2026-03-01", "2026-03-31")
        after_filing, own = await read()
        assert after_filing == own
        assert after_filing[0] == after_project[0] and after_filing[1] > after_project[1]

    asyncio.run(scenario())
