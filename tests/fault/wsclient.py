"""A live-map client that survives API restarts: it follows `/ws/live`, reconnects with backoff
when the connection drops, and after each (re)connection resyncs the alerts it may have missed
over REST (`GET /api/alerts?since=`) once the API reports its live feed ready. Runs in its own
thread with its own event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets


@dataclass
class ResyncingClient:
    http: str
    token: str
    since_ts: float
    wants: Callable[[dict[str, Any]], bool]  # which alerts (REST rows or live messages) count
    alerts_live: set[str] = field(default_factory=set)
    alerts_resync: set[str] = field(default_factory=set)
    positions: int = 0
    positions_per_connection: list[int] = field(default_factory=list)
    connects: int = 0
    drops: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def alerts(self) -> set[str]:
        return self.alerts_live | self.alerts_resync

    def start(self) -> ResyncingClient:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)

    def wait_connected(self, connects: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.connects < connects:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.connects} connections after {timeout_s} s")
            time.sleep(0.05)

    async def _run(self) -> None:
        ws_url = self.http.replace("http://", "ws://") + f"/ws/live?token={self.token}"
        backoff = 0.2
        async with httpx.AsyncClient(
            base_url=self.http, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        ) as api:
            while not self._stop.is_set():
                try:
                    async with websockets.connect(ws_url, open_timeout=5, max_queue=None) as ws:
                        self.connects += 1
                        self.positions_per_connection.append(0)
                        backoff = 0.2
                        resync = asyncio.create_task(self._resync(api))
                        while not self._stop.is_set():
                            try:
                                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                            except TimeoutError:
                                continue
                            self._on_message(json.loads(raw))
                        await resync
                except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake) as exc:
                    self.drops += 1
                    self.errors.append(type(exc).__name__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)

    def _on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "position":
            self.positions += 1
            self.positions_per_connection[-1] += 1
        elif msg.get("type") == "alert":
            row = msg.get("alert") or msg
            if self.wants(row):
                self.alerts_live.add(str(row["id"]))

    async def _resync(self, api: httpx.AsyncClient) -> None:
        """Once the API's live feed is positioned, what happened before is in PostGIS."""
        for _ in range(200):
            try:
                r = await api.get("/healthz")
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        since = dt.datetime.fromtimestamp(self.since_ts, dt.UTC).isoformat()
        for _ in range(50):
            try:
                r = await api.get("/api/alerts", params={"since": since, "limit": 10000})
                r.raise_for_status()
                self.alerts_resync.update(str(a["id"]) for a in r.json() if self.wants(a))
                return
            except httpx.HTTPError as exc:
                self.errors.append(f"resync: {exc!r}")
                await asyncio.sleep(0.2)
