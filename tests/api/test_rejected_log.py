"""The rejected log stays bounded under a flood and its counts stay exact."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

from config.settings import Settings
from store.db import async_engine
from streams.rejected_log import tally_and_sample
from tests.api.conftest import tag
from tests.stack_client import StackClient


def rows(source: str, n: int, at: dt.datetime) -> list[dict[str, Any]]:
    return [
        {"id": f"{source}-{k}", "source": source, "reason": "bad_json", "received_at": at}
        for k in range(n)
    ]


def test_a_flood_is_counted_exactly_and_sampled(sw: StackClient) -> None:
    source = f"t{tag()}"
    hour = dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC)

    async def run() -> list[int]:
        engine = async_engine(Settings(database_url=sw.endpoints["database"]))
        kept = []
        try:
            for batch in (30, 30, 30, 500):
                async with engine.begin() as conn:
                    chosen = await tally_and_sample(conn, rows(source, batch, hour), 50)
                kept.append(len(chosen))
            async with engine.begin() as conn:  # the next hour starts a new sample
                later = hour + dt.timedelta(hours=1, minutes=5)
                kept.append(len(await tally_and_sample(conn, rows(source, 7, later), 50)))
        finally:
            await engine.dispose()
        return kept

    assert asyncio.run(run()) == [30, 20, 0, 0, 7]
    tallies = sw.sql(
        "SELECT hour, total, kept FROM rejected_tallies WHERE source = %s ORDER BY hour", source
    )
    assert [(t, k) for _h, t, k in tallies] == [(590, 50), (7, 7)]


def test_http_rejections_are_counted_once_each(sw: StackClient) -> None:
    def total() -> int:
        got = sw.sql(
            "SELECT coalesce(sum(total), 0) FROM rejected_tallies "
            "WHERE source = 'http' AND reason = 'missing_field'"
        )
        return int(got[0][0])

    before = total()
    with httpx.Client(base_url=sw.http, timeout=30) as client:
        for _ in range(40):
            assert client.get("/osmand", params={"lat": "22.5"}).status_code == 400
    from tests.stack_client import wait_until

    wait_until(lambda: total() >= before + 40 or None, timeout_s=60, what="40 tallied")
    assert total() == before + 40
