"""A burst of requests, with or without a valid token, cannot hold every database connection:
the token is looked up and its connection given back before the request's own is taken."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.stack_client import StackClient

pytestmark = pytest.mark.stack

BURST = 40  # twice the API's pool (10 + 10 overflow)


async def _burst(base: str, token: str) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        answers = await asyncio.gather(
            *[
                client.get(
                    "/api/alerts", params={"limit": 5}, headers={"Authorization": f"Bearer {token}"}
                )
                for _ in range(BURST)
            ]
        )
    return [a.status_code for a in answers]


@pytest.mark.parametrize("valid", [False, True])
def test_a_burst_never_exhausts_the_pool(sw: StackClient, valid: bool) -> None:
    token = sw.admin_token if valid else "sw_" + "x" * 40
    codes = asyncio.run(_burst(sw.http, token))
    assert set(codes) <= ({200, 503} if valid else {401}), codes
    assert codes.count(200 if valid else 401) >= BURST // 2, codes
    # meanwhile the API still answers others promptly: the burst is over, nothing is stuck
    with sw.api() as api:
        assert api.get("/api/projects", params={"limit": 1}).status_code == 200
