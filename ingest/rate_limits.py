"""Rate limits at the HTTP edge: per identity and per source address on ingest, per username
and per address on failed logins (CONTRACT §6.2). In memory, per API process: the counts
are a defence against floods and password guessing, not a record, and restart empty.

Limits are written as `limits` strings ("20/second", "5/minute"); the sliding-window
counter keeps two integers per key, so a flood from many addresses costs little memory.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter


@dataclass(frozen=True)
class Refused:
    """Over a limit: what to tell the client."""

    scope: str  # "identity", "address", "username"
    limit: str
    retry_after_s: int

    @property
    def message(self) -> str:
        return (
            f"too many requests for this {self.scope} (limit {self.limit}); "
            f"retry after {self.retry_after_s} s"
        )


class RateLimits:
    """Named limits over keys: `take("address", "10.0.0.7")` uses one unit of the address
    limit and answers `Refused` once it is exhausted."""

    def __init__(self, **limits: str) -> None:
        self._items: dict[str, RateLimitItem] = {name: parse(v) for name, v in limits.items()}
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def take(self, name: str, key: str) -> Refused | None:
        item = self._items[name]
        if self._limiter.hit(item, name, key):
            return None
        return self._refused(name, key)

    def exhausted(self, name: str, key: str) -> Refused | None:
        """Refused when no unit is left, without using one (a login checks before it tries)."""
        item = self._items[name]
        if self._limiter.test(item, name, key):
            return None
        return self._refused(name, key)

    def clear(self, name: str, key: str) -> None:
        """Forget what `key` used of the limit `name` (a successful login clears its failures)."""
        self._limiter.clear(self._items[name], name, key)

    def _refused(self, name: str, key: str) -> Refused:
        item = self._items[name]
        stats = self._limiter.get_window_stats(item, name, key)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return Refused(name.rsplit("_", 1)[-1], str(item), min(wait, item.get_expiry()))
