"""Rate limits at the HTTP edge (CONTRACT §6.2, docs/security.md): ingest per identity and per
source address, login attempts per address. The session stack runs with them lifted (every
test talks from one address); here an API of its own, in this process, with small limits,
serves the session stack's database and Kafka."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config.settings import Settings
from ingest.rate_limits import RateLimits
from live_api.app import create_app
from tests.stack_client import StackClient


@pytest.fixture
def strict_api(sw: StackClient) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=sw.endpoints["data_dir"],
        database_url=sw.endpoints["database"],
        kafka_url=sw.endpoints["kafka"],
        mqtt_url=f"mqtt://{sw.endpoints['mqtt_host']}:{sw.endpoints['mqtt_port']}",
        personal_data_key="00" * 16,
        ingest_rate_per_identity="3/minute",
        ingest_rate_per_address="8/minute",
        login_attempts_per_address="4/minute",
    )
    with TestClient(create_app(settings)) as client:
        _early_in_a_minute()
        yield client


def _early_in_a_minute(margin_s: float = 20.0) -> None:
    """The counters' windows are the clock's minutes (`limits`' sliding-window counter), and a
    run of requests that crosses into the next minute is allowed one more than the limit (the
    last minute's count, weighted by what is left of it, rounds down): start each test with
    `margin_s` of its minute left. A test that crossed failed once in a fresh clone's run."""
    left = 60.0 - time.time() % 60.0
    if left < margin_s:
        time.sleep(left + 0.05)


def _osmand_id(sw: StackClient) -> str:
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": f"E-rl-{uuid.uuid4().hex[:8]}",
                "name": "Rl",
                "registered_region": "440300",
                "cert_status": "valid",
            },
        )
    assert r.status_code == 201, r.text
    return str(r.json()["osmand_id"])


def _fix(client: TestClient, osmand_id: str, i: int) -> int:
    ts = int(time.time()) - 60 + i
    query = f"/osmand?id={osmand_id}&lat=22.54&lon=114.05&timestamp={ts}&accuracy=5"
    return client.get(query).status_code


def test_one_phone_is_held_to_its_limit_and_told_when_to_retry(
    sw: StackClient, strict_api: TestClient
) -> None:
    phone, other = _osmand_id(sw), _osmand_id(sw)
    assert [_fix(strict_api, phone, i) for i in range(4)] == [200, 200, 200, 429]
    r = strict_api.get(f"/osmand?id={phone}&lat=22.54&lon=114.05&timestamp={int(time.time())}")
    assert r.status_code == 429
    assert r.json()["detail"]["reason"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert _fix(strict_api, other, 0) == 200  # another phone is not held back


def test_one_address_is_held_to_its_limit_whatever_ids_it_tries(
    sw: StackClient, strict_api: TestClient
) -> None:
    statuses = [_fix(strict_api, f"guess-{uuid.uuid4().hex}", 0) for _ in range(12)]
    assert statuses == [400] * 8 + [429] * 4  # unknown phone ids, then the address's limit


def test_login_attempts_per_address_are_limited(strict_api: TestClient) -> None:
    statuses = [
        strict_api.post(
            "/api/login", json={"username": f"u-{i}", "password": "not a real password"}
        ).status_code
        for i in range(6)
    ]
    assert statuses == [401, 401, 401, 401, 429, 429]


def test_limits_count_each_key_on_its_own() -> None:
    limits = RateLimits(demo="2/minute")
    assert limits.take("demo", "a") is None and limits.take("demo", "a") is None
    refused = limits.take("demo", "a")
    assert refused is not None and refused.scope == "demo" and 1 <= refused.retry_after_s <= 60
    assert limits.take("demo", "b") is None
    assert limits.exhausted("demo", "a") is not None and limits.exhausted("demo", "c") is None
    with pytest.raises(ValueError):
        RateLimits(demo="often")
