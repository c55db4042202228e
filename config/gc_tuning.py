"""Garbage-collector settings of SiteWatch's long-running processes (stream worker, API, bridge).

CPython's default thresholds (700, 10, 10) run a full collection whenever the objects that
survived the young collections grow by a quarter of the old heap. The stream worker keeps
tens of thousands of engineers' decoded states and replaces those of every batch, so under
load the old heap grows fast while almost nothing in it is garbage (a replaced state dies by
its reference count). Measured at 3,000 fixes/s (docs/BENCHMARKS.md, sixth session): a full
collection every 1-2 s, each 300-690 ms with the event loop stopped: about a third of the
worker's time, and most of the p99 latency at half load.

`tune()` freezes what exists after start-up (modules, the app: never garbage) so that no
collection scans it again, and lets the young generations grow before they are collected:
fewer objects reach the old generation, and it is collected less often. Cycles among old
objects are still collected, later.

The young threshold counts allocations less deallocations, so a state replaced by a new one
counts nothing: a young collection finds every engineer state made since the one before
(measured: 127,000 objects, 20,000 engineers' states, in a "young" collection of 84 ms at
5,000 fixes/s), whatever the threshold. What keeps the young collections short is how few
tracked objects a state holds (geofence.tracking keeps a window's fixes as untracked tuples).

Those young collections still stopped the worker for 100-190 ms every 5-25 s: a young
generation of every state replaced since the one before. `Sweeper` (the worker calls it every
second) collects the young generation while it is small, then freezes what survived, so that
no later collection scans it again; cycles among frozen objects are not collected until the
next full collection, which the sweeper makes once every `full_every_s`.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

# (young objects before a collection, young collections per middle one, middle per old one)
THRESHOLDS = (10_000, 20, 100)
# A collection at least this long is logged: the event loop stands still meanwhile, and a
# stall of the latency at half load is found by its time in the log.
SLOW_COLLECTION_S = 0.1
SWEEP_EVERY_S = 1.0  # how often the stream worker sweeps (Sweeper)
FULL_EVERY_S = 3600.0  # how often a sweep collects everything, the frozen objects included

log = logging.getLogger("sitewatch.gc")


def tune() -> None:
    """Call once the process has built its app, before it starts serving."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    if _log_slow_collections not in gc.callbacks:
        gc.callbacks.append(_log_slow_collections)


class Sweeper:
    """A young collection while the young generation is small, then a freeze of what survived
    (see the module docstring); every `full_every_s` a full collection of everything instead,
    so that garbage cycles among the frozen objects are freed."""

    def __init__(
        self, full_every_s: float = FULL_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.full_every_s = full_every_s
        self._clock = clock
        self._last_full = clock()

    def sweep(self) -> int:
        """One sweep; the generation collected (0, or 2 for the periodic full collection)."""
        now = self._clock()
        if now - self._last_full >= self.full_every_s:
            self._last_full = now
            gc.unfreeze()
            gc.collect(2)
            generation = 2
        else:
            gc.collect(0)
            generation = 0
        gc.freeze()
        return generation


_started = 0.0


def _log_slow_collections(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    took = time.perf_counter() - _started
    if took >= SLOW_COLLECTION_S:
        log.warning(
            "a generation %d collection stopped the process for %.0f ms (%d objects freed)",
            info.get("generation", -1),
            took * 1000,
            info.get("collected", 0),
        )
