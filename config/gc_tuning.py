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
"""

from __future__ import annotations

import gc

# (young objects before a collection, young collections per middle one, middle per old one)
THRESHOLDS = (10_000, 20, 100)


def tune() -> None:
    """Call once the process has built its app, before it starts serving."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
