"""The worker's periodic step report (streams.stats): steps per batch and how long after the
bridge received them the records were taken and written."""

from __future__ import annotations

import time

from streams.stats import StepTimes


def test_report_names_the_steps_and_the_lags_since_receipt_then_starts_over() -> None:
    timing = StepTimes("engineer_records")
    assert timing.report() is None  # idle: no line
    now = time.time()
    received = [now - k / 1000 for k in range(1, 101)] + [None]  # 1..100 ms ago, one unknown
    timing.start(3)
    timing.count(101)
    timing.since_received(received, "taken")
    timing.lap("rules")
    timing.since_received([now - 0.5], "written")
    line = timing.report()
    assert line is not None
    assert line.startswith("engineer_records: 1 batches, 3 Kafka records, 101 records")
    assert "rules " in line
    taken = line.split("ms since received at taken: ")[1].split(";")[0]
    p50, p99 = (int(part.split()[1]) for part in taken.split(", "))
    assert 50 <= p50 <= 70 and 99 <= p99 <= 130, taken
    written = line.split("ms since received at written: ")[1]
    assert int(written.split(", ")[0].split()[1]) >= 500
    assert timing.report() is None and not timing.lags  # counters start over
