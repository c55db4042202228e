"""The engineer batch as an ordinary object (streams.engineer_writer), driven without Faust or
Kafka against the session's PostGIS: records in, facts, alerts, the evidence chain and the
live messages out; a second delivery of the same batch changes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text

from config.settings import Settings
from store.db import async_engine
from streams.engineer_writer import EngineerWriter
from tests.stack_client import StackClient, site
from wire.codecs import decode_mqtt
from wire.records import Record

FUTIAN = (114.0412, 22.5412)
TZ = ZoneInfo("Asia/Shanghai")


def _records(engineer_id: str, n: int, lon: float, lat: float) -> list[Record]:
    """Fixes of yesterday around noon, local time: one local day, whatever the hour now."""
    now = time.time()
    noon = dt.datetime.combine(
        dt.datetime.now(TZ).date() - dt.timedelta(days=1), dt.time(12), TZ
    ).timestamp()
    return [
        decode_mqtt(
            f"sitewatch/checkin/{engineer_id}",
            orjson.dumps(
                {
                    "msg_id": f"{engineer_id}-{i}",
                    "engineer_id": engineer_id,
                    "ts": round(noon) + i * 60,
                    "lat": lat,
                    "lon": lon,
                    "acc": 5,
                    "kind": "checkin" if i == 0 else "position",
                }
            ),
            now=now,
        )
        for i in range(n)
    ]


def test_a_batch_is_written_once_without_faust(sw: StackClient) -> None:
    tag = uuid.uuid4().hex[:6]
    project_id, engineer_id = f"EW-P-{tag}", f"EW-E-{tag}"
    lon, lat = sw.free_spot(*FUTIAN)  # other tests' sites must not cover it: one alert each
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
        r = api.post(  # registered elsewhere without a filing: the batch raises an alert
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": "批",
                "registered_region": "440100",
                "cert_status": "valid",
            },
        )
        assert r.status_code == 201, r.text
    settings = Settings(database_url=sw.endpoints["database"], data_dir=sw.endpoints["data_dir"])
    pushed: list[dict[str, Any]] = []

    async def push_live(messages: list[dict[str, Any]]) -> None:
        pushed.extend(messages)

    async def run() -> None:
        engine = async_engine(settings, pool_size=2)
        writer = EngineerWriter(settings, engine, push_live)
        try:
            batch = _records(engineer_id, 5, lon, lat)
            await writer.write(batch)
            await writer.write(batch)  # redelivered
            assert writer.attendance_messages()  # on site: live attendance for the project
        finally:
            await engine.dispose()

    asyncio.run(run())
    count = "SELECT count(*) FROM {} WHERE engineer_id = %s"
    assert sw.sql(count.format("fixes"), engineer_id)[0][0] == 5
    assert sw.sql(count.format("evidence_entries"), engineer_id)[0][0] == 5
    assert sw.sql(count.format("alerts"), engineer_id)[0][0] == 1
    (alert_id,) = sw.sql("SELECT id FROM alerts WHERE engineer_id = %s", engineer_id)[0]
    assert sw.sql("SELECT count(*) FROM alert_events WHERE alert_id = %s", alert_id)[0][0] == 1
    positions = {m["msg_id"] for m in pushed if m["type"] == "position"}
    assert positions == {f"{engineer_id}-{i}" for i in range(5)}
    assert [m["type"] for m in pushed].count("alert") == 1  # a new alert is pushed once


def test_a_fix_whose_row_retention_trimmed_is_not_chained_again(sw: StackClient) -> None:
    """The writer trusts the `fixes` insert to say which fixes are chained already (a row and
    its entry are written together), except for fixes old enough for retention to have
    trimmed their rows: those are looked up. Without that, a replay of a trimmed fix would
    chain it twice (the unique index refuses, and the batch becomes a dead letter)."""
    engineer_id = sw.new_engineer("EW-T")["id"]
    settings = Settings(
        database_url=sw.endpoints["database"], data_dir=sw.endpoints["data_dir"], retention_days=2
    )
    lon, lat = 113.93, 22.52
    fresh = _records(engineer_id, 3, lon, lat)
    # 2.5 days old: past the 2 days retention keeps, within a day of them (the margin)
    shift = round(time.time() - 2.5 * 86400 - fresh[0].ts)  # type: ignore[union-attr]
    old = [dataclasses.replace(r, ts=r.ts + shift) for r in fresh]  # type: ignore[type-var]

    async def noop(_: list[dict[str, Any]]) -> None:
        return None

    async def write_twice() -> None:
        engine = async_engine(settings, pool_size=2)
        try:
            await EngineerWriter(settings, engine, noop).write(old)
            async with engine.begin() as conn:  # what `store.retention.trim` does to them
                await conn.execute(
                    text("DELETE FROM fixes WHERE engineer_id = :e"), {"e": engineer_id}
                )
            await EngineerWriter(settings, engine, noop).write(old)  # replayed
        finally:
            await engine.dispose()

    asyncio.run(write_twice())
    count = "SELECT count(*) FROM {} WHERE engineer_id = %s"
    assert sw.sql(count.format("fixes"), engineer_id)[0][0] == 3
    assert sw.sql(count.format("evidence_entries"), engineer_id)[0][0] == 3
