"""Where a worker's time goes: per-step wall time of the agents' batches, logged periodically
(`sitewatch.streams` at INFO) so an operator sees which step bounds the throughput."""

from __future__ import annotations

import time
from collections import defaultdict


class StepTimes:
    def __init__(self, name: str) -> None:
        self.name = name
        self.batches = 0
        self.records = 0
        self.events = 0
        self.seconds: dict[str, float] = defaultdict(float)
        self._mark = 0.0

    def start(self, events: int) -> None:
        self.batches += 1
        self.events += events
        self._mark = time.perf_counter()

    def count(self, records: int) -> None:
        """Records of the current batch (known once its Kafka events are decoded)."""
        self.records += records

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] += now - self._mark
        self._mark = now

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
        self.batches = self.records = self.events = 0
        self.seconds.clear()
        return line
