"""`/ws/live?token=&region=`: positions, transitions, alerts and attendance as they happen,
limited to the caller's role and region (CONTRACT section 5)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from geofence.codes import code_covers, normalise_code
from live_api.deps import caller_for_token
from live_api.hub import Hub, Subscriber

router = APIRouter()


@router.websocket("/ws/live")
async def live(ws: WebSocket, token: str | None = None, region: str | None = None) -> None:
    caller = await caller_for_token(ws.app.state.engine, token)
    # Refusals accept first and then close, so that clients see the close code (a close
    # before accepting is an HTTP 403 on the handshake, without code or reason).
    if caller is None:
        await ws.accept()
        await ws.close(code=4401, reason="missing or unknown token")
        return
    if region is not None:
        try:
            region = normalise_code(region)
        except ValueError:
            await ws.accept()
            await ws.close(code=4422, reason=f"region {region!r} is not a 6-digit code")
            return
        if caller.role == "regulator" and not code_covers(caller.region_code or "", region):
            await ws.accept()
            await ws.close(
                code=4403, reason=f"region {region} is outside your region {caller.region_code}"
            )
            return
    await ws.accept()
    hub: Hub = ws.app.state.hub
    sub = Subscriber(caller, region)
    hub.subscribers.add(sub)
    receiver = asyncio.create_task(_drain(ws))
    recheck_s = ws.app.state.settings.ws_token_recheck_s
    next_check = time.monotonic() + recheck_s
    try:
        while not receiver.done():
            if time.monotonic() >= next_check:
                # a revoked or expired token loses its live feed too, not only its next call
                if await caller_for_token(ws.app.state.engine, token) is None:
                    await ws.close(code=4401, reason="token revoked or expired")
                    break
                next_check = time.monotonic() + recheck_s
            getter = asyncio.ensure_future(sub.queue.get())
            done, _ = await asyncio.wait(
                {getter, receiver},
                timeout=max(0.0, next_check - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter not in done:
                getter.cancel()
                if receiver.done():
                    break
                continue
            await ws.send_text(getter.result())
            # what queued meanwhile goes out without a task and a wait per message
            while not sub.queue.empty():
                await ws.send_text(sub.queue.get_nowait())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.subscribers.discard(sub)
        receiver.cancel()
        with contextlib.suppress(Exception):
            await ws.close()


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a disconnect is noticed."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive_text()
