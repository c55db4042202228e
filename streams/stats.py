"""Where a worker's time goes: per-step wall time of the agents' batches, logged periodically
(`sitewatch.streams` at INFO) so an operator sees which step bounds the throughput."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

LAGS_KEPT = 200_000  # per stage and report: a few minutes of a busy worker


class StepTimes:
    def __init__(self, name: str) -> None:
        self.name = name
        self.batches = 0
        self.records = 0
        self.events = 0
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)  # the loop thread's own
        self._mark = 0.0
        self._cpu_mark = 0.0
        # ms from the bridge's receipt of each record to a stage of its batch
        self.lags: dict[str, list[float]] = defaultdict(list)

    def start(self, events: int) -> None:
        self.batches += 1
        self.events += events
        self._mark = time.perf_counter()
        self._cpu_mark = time.thread_time()

    def count(self, records: int) -> None:
        """Records of the current batch (known once its Kafka events are decoded)."""
        self.records += records

    def lap(self, step: str) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.seconds[step] += now - self._mark
        self.cpu_seconds[step] += cpu - self._cpu_mark
        self._mark, self._cpu_mark = now, cpu

    def since_received(self, received: Sequence[float | None], stage: str) -> None:
        """How long ago (epoch seconds given) the bridge received, or sent on, each record of
        the batch, at `stage`: where a record's time to the map goes, before the worker took
        it or in its batch."""
        # diagnostics only: a batch written again (a retry, a poison record's halves) counts
        # again, and past LAGS_KEPT an interval's figures are those of its start
        lags = self.lags[stage]
        if len(lags) < LAGS_KEPT:
            now = time.time()
            lags.extend((now - r) * 1000 for r in received if r is not None)

    def report(self) -> str | None:
        """One line since the last report (None when idle); resets the counters."""
        if not self.batches:
            return None
        total = sum(self.seconds.values())
        steps = ", ".join(
            f"{k} {v / self.batches * 1000:.1f}" for k, v in sorted(self.seconds.items())
        )
        line = (
            f"{self.name}: {self.batches} batches, {self.events} Kafka records, "
            f"{self.records} records, "
            f"{self.records / total if total else 0:.0f} records/s busy; ms per batch: {steps}"
        )
        line += "; of it the loop's CPU: " + ", ".join(
            f"{k} {v / self.batches * 1000:.1f}" for k, v in sorted(self.cpu_seconds.items())
        )
        for stage, lags in sorted(self.lags.items()):
            if lags:
                lags.sort()
                p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, len(lags) * 99 // 100)]
                line += f"; ms since received at {stage}: p50 {p50:.0f}, p99 {p99:.0f}"
        self.batches = self.records = self.events = 0
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.lags.clear()
        return line
