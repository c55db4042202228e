"""Seals the evidence chains every `SITEWATCH_SEAL_INTERVAL_S` (rules.evidence_seals): the
final head of every engineer's chain and the head of every alert's chain (rules.alert_chain)
that moved since the last seal, signed with the seal key, written
to the seal directory and, when `SITEWATCH_SEAL_PUSH_URL` is set, POSTed there too (best
effort: a failed push is logged; the file is the record)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import urllib.parse
import urllib.request
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from config.settings import Settings
from rules.evidence_seals import make_seal
from store import alert_events
from store import seals as seal_store

log = logging.getLogger("sitewatch.seals")
ALERT_MARGIN = dt.timedelta(minutes=10)


class Sealer:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        key = seal_store.seal_key(settings, make=True)
        assert key is not None
        self.key = key
        self.settings = settings
        self.engine = engine
        self.directory = seal_store.seal_dir(settings)
        self.sealed: dict[str, int] = {}  # engineer -> last sealed seq, since this start
        # alert chains that moved since the last seal (with a margin for transactions still
        # open then); on start, since the newest seal on disk
        self.alerts_since = seal_store.newest_seal_time(self.directory) - ALERT_MARGIN
        self._lock = asyncio.Lock()  # the timer and POST /api/evidence/seal never overlap
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.settings.seal_interval_s > 0:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.seal_interval_s)
            try:
                await self.seal_once()
            except Exception:  # noqa: BLE001 - the next round tries again; say why
                log.exception("sealing the evidence chains failed; retrying next round")

    async def seal_once(self) -> tuple[Path | None, int]:
        """Seal what moved: the file written (None when nothing did) and its head count."""
        async with self._lock:
            return await self._seal()

    async def _seal(self) -> tuple[Path | None, int]:
        started = dt.datetime.now(dt.UTC)
        async with self.engine.connect() as conn:
            engineers = await seal_store.final_heads(conn, self.settings.allowed_lateness_s)
            alerts = await alert_events.changed_heads(conn, self.alerts_since)
        moved = [h for h in engineers if self.sealed.get(h.engineer_id) != h.seq] + alerts
        if not moved:
            self.alerts_since = started - ALERT_MARGIN
            return None, 0
        seal = make_seal(self.key.private_hex, self.key.public_hex, time.time(), moved)
        path = await asyncio.to_thread(seal_store.write_seal, self.directory, seal)
        # only once written: a failed round reads the same heads again next time
        self.alerts_since = started - ALERT_MARGIN
        self.sealed.update((h.engineer_id, h.seq) for h in engineers)
        if self.settings.seal_push_url:
            await asyncio.to_thread(self._push, seal)
        log.info("sealed %d evidence chain heads in %s", len(moved), path.name)
        return path, len(moved)

    def _push(self, seal: dict[str, object]) -> None:
        request = urllib.request.Request(
            self.settings.seal_push_url,
            data=json.dumps(seal).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except OSError as exc:
            log.warning("seal not pushed to %s: %s", _redacted(self.settings.seal_push_url), exc)


def _redacted(url: str) -> str:
    """The push URL without user, password or query (any of them may hold a secret)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit((parts.scheme, host + port, parts.path, "", ""))
