"""Tokens expire and can be revoked (CONTRACT 6.2): a revoked or expired token gets 401 on its
next call, and its open WebSockets are closed."""

from __future__ import annotations

import asyncio
import time

import websockets

from tests.stack_client import StackClient


def test_revoked_tokens_get_401_and_lose_their_websocket(sw: StackClient) -> None:
    with sw.api() as api:
        r = api.post("/api/tokens", json={"role": "regulator", "region_code": "440300"})
        assert r.status_code == 201, r.text
        token, token_id = r.json()["token"], r.json()["id"]
        listed = {t["id"]: t for t in api.get("/api/tokens").json()}
        assert listed[token_id]["revoked_at"] is None and "token" not in listed[token_id]
    with sw.api(token) as mine:
        assert mine.get("/api/projects").status_code == 200

    async def watch() -> tuple[int | None, float]:
        async with websockets.connect(sw.ws_url(token), open_timeout=10) as ws:
            with sw.api() as api:
                revoked = api.post(f"/api/tokens/{token_id}/revoke")
                assert revoked.status_code == 200 and revoked.json()["revoked_at"]
            started = time.monotonic()
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=60)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None, time.monotonic() - started

    code, after_s = asyncio.run(watch())
    assert code == 4401 and after_s < 60
    with sw.api(token) as mine:
        assert mine.get("/api/projects").status_code == 401
    with sw.api() as api:
        assert api.post("/api/tokens/987654321/revoke").status_code == 404


def test_tokens_expire(sw: StackClient) -> None:
    with sw.api() as api:
        r = api.post("/api/tokens", json={"role": "admin", "expires_in_s": 60})
        assert r.status_code == 201 and r.json()["expires_at"]
        token, token_id = r.json()["token"], r.json()["id"]
        assert api.post("/api/tokens", json={"role": "admin", "expires_in_s": 5}).status_code == 422
    with sw.api(token) as mine:
        assert mine.get("/api/projects").status_code == 200
    # let it be past its expiry without waiting a minute
    sw.sql(
        "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = %s RETURNING id",
        token_id,
    )
    with sw.api(token) as mine:
        assert mine.get("/api/projects").status_code == 401
