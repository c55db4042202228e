"""Attendance of an offline training (rules.training), pure, hand-computed."""

from __future__ import annotations

from rules.training import attendees, minutes_inside


def test_minutes_inside_count_only_the_short_gaps() -> None:
    assert minutes_inside([0, 600, 1200, 3000, 3300], max_gap_s=900) == 25.0  # 10+10+5
    assert minutes_inside([42.0], max_gap_s=900) == 0.0


def test_only_those_inside_long_enough_attend() -> None:
    fixes = [("A", t) for t in range(0, 3001, 600)] + [("B", 0), ("B", 600)]
    assert attendees(fixes, max_gap_s=900, min_minutes_present=48) == {"A": 50.0}
    assert attendees(fixes, max_gap_s=900, min_minutes_present=10) == {"A": 50.0, "B": 10.0}
