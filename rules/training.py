"""Who attended an offline training (CONTRACT §6.3): an engineer whose own accepted fixes put
them inside its place during its time window for at least `min_minutes_present`. Time inside
is counted like attendance (CONTRACT section 4): the gaps of at most `max_gap_s` between
consecutive fixes inside. Sign-in by proxy is impossible: only the engineer's own fixes,
accepted by the ingest (signed where the engineer has a key), count. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def minutes_inside(times_s: Iterable[float], max_gap_s: float) -> float:
    """Minutes covered by the gaps of at most `max_gap_s` between consecutive times."""
    ordered = sorted(times_s)
    covered = sum(b - a for a, b in zip(ordered, ordered[1:], strict=False) if b - a <= max_gap_s)
    return covered / 60.0


def attendees(
    fixes_inside: Iterable[tuple[str, float]], *, max_gap_s: float, min_minutes_present: float
) -> dict[str, float]:
    """`fixes_inside`: (engineer, epoch seconds) of the fixes inside the place and window.
    The engineers who were there long enough, with their minutes."""
    times: dict[str, list[float]] = defaultdict(list)
    for engineer, ts in fixes_inside:
        times[engineer].append(ts)
    minutes = {e: minutes_inside(t, max_gap_s) for e, t in times.items()}
    return {e: round(m, 2) for e, m in minutes.items() if m >= min_minutes_present}
