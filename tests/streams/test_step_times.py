"""The worker's periodic step report (streams.stats): steps per batch and how long after the
bridge received them the records were taken and written."""

from __future__ import annotations

import pytest

from streams import stats
from streams.stats import StepTimes

NOW = 1_800_000_000.0


def test_report_names_the_steps_and_the_lags_since_receipt_then_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stats.time, "time", lambda: NOW)
    timing = StepTimes("engineer_records")
    assert timing.report() is None  # idle: no line
    received = [NOW - k / 1000 for k in range(1, 101)] + [None]  # 1..100 ms ago, one unknown
    timing.start(3)
    timing.count(101)
    timing.since_received(received, "taken")
    timing.lap("rules")
    timing.since_received([NOW - 0.5], "written")
    line = timing.report()
    assert line is not None
    assert line.startswith("engineer_records: 1 batches, 3 Kafka records, 101 records")
    assert "rules " in line
    assert "ms since received at taken: p50 51, p99 100" in line
    assert line.endswith("ms since received at written: p50 500, p99 500")
    assert timing.report() is None and not timing.lags  # counters start over
