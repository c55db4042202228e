"""`missing_log` (CONTRACT section 4): an engineer on site at P on a local day without a
supervision log for P that day, once the day has closed.

Stream time is per engineer: the newest event time seen in any of the engineer's records
(fixes of any accuracy, supervision logs, OwnTracks events). It lives in the engineer's
state in the worker's table, next to the track, so it moves with the engineer's partition
and is the same whatever other engineers (other partitions, other replays) are doing. A day
D is closed when the engineer's stream time is past the day's end (local midnight starting
D + 1) plus `allowed_lateness_s`; a day is therefore closed by the engineer's own later
record, never by the wall clock or by somebody else's fix. `closed_through` remembers the
last closed day so each day is examined once; a fix that arrives for a day that is already
closed re-examines that day (the alert id makes this idempotent).

Pure: no I/O, no clock. The worker runs the query (`store.queries.unlogged_days`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from rules.alerts import alert

MIN_DATE = dt.date(2000, 1, 1)  # ingest refuses timestamps before 2000-01-01
ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class EngineerClock:
    stream_ts: float | None = None  # newest event time of the engineer (epoch seconds)
    closed_through: dt.date | None = None  # every day up to this one has been examined

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream_ts": self.stream_ts,
            "closed_through": self.closed_through.isoformat() if self.closed_through else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> EngineerClock:
        if not d:
            return cls()
        closed = d.get("closed_through")
        ts = d.get("stream_ts")
        return cls(
            None if ts is None else float(ts),
            dt.date.fromisoformat(closed) if closed else None,
        )


@dataclass(frozen=True)
class DayCheck:
    """Examine the engineer's days `first`..`last` (inclusive) for missing logs."""

    engineer_id: str
    first: dt.date
    last: dt.date


def day_end(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The end of local day `day`: local midnight at the start of the next day."""
    return dt.datetime.combine(day + ONE_DAY, dt.time(0), tzinfo=tz)


# per (zone, lateness): the span (lo, hi] of `stream_ts - lateness` over which the newest
# closed day stays the same, and that day. The worker asks once per engineer and batch, and
# the zone arithmetic costs more than the rest of the engineer's clock.
_CLOSED_SPANS: dict[tuple[ZoneInfo, float], tuple[float, float, dt.date]] = {}


def last_closed_day(stream_ts: float, tz: ZoneInfo, allowed_lateness_s: float) -> dt.date:
    """The newest local day D whose end plus the lateness is strictly before `stream_ts`."""
    x = stream_ts - allowed_lateness_s
    span = _CLOSED_SPANS.get((tz, allowed_lateness_s))
    if span is not None and span[0] < x <= span[1]:
        return span[2]
    day = dt.datetime.fromtimestamp(x, tz).date()
    # the end of day - 1 is the start of `day`: closed when x is past it
    start = _day_start(day, tz)
    if x > start:
        closed, lo, hi = day - ONE_DAY, start, _day_start(day + ONE_DAY, tz)
    else:
        closed, lo, hi = day - 2 * ONE_DAY, _day_start(day - ONE_DAY, tz), start
    if len(_CLOSED_SPANS) > 64:
        _CLOSED_SPANS.clear()
    _CLOSED_SPANS[(tz, allowed_lateness_s)] = (lo, hi, closed)
    return closed


def _day_start(day: dt.date, tz: ZoneInfo) -> float:
    return dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp()


def advance_clock(
    engineer_id: str,
    clock: EngineerClock,
    event_ts: Iterable[float],
    on_site_days: Iterable[dt.date],
    *,
    tz: ZoneInfo,
    allowed_lateness_s: float,
) -> tuple[EngineerClock, list[DayCheck]]:
    """Move the engineer's stream time by a batch; return the new clock and the days to examine:
    the days newly closed, and already-closed days that received an on-site fix now."""
    newest = max(event_ts, default=None)
    stream_ts = clock.stream_ts
    if newest is not None and (stream_ts is None or newest > stream_ts):
        stream_ts = newest
    checks: list[DayCheck] = []
    closed = clock.closed_through
    if stream_ts is not None:
        now_closed = last_closed_day(stream_ts, tz, allowed_lateness_s)
        if closed is None or now_closed > closed:
            first = MIN_DATE if closed is None else closed + dt.timedelta(days=1)
            checks.append(DayCheck(engineer_id, first, now_closed))
            closed = now_closed
    if clock.closed_through is not None:
        for day in sorted({d for d in on_site_days if d <= clock.closed_through}):
            checks.append(DayCheck(engineer_id, day, day))  # a late fix into a closed day
    return EngineerClock(stream_ts, closed), checks


def missing_log_alert_id(engineer_id: str, project_id: str, day: dt.date) -> str:
    return f"missing_log:{engineer_id}:{project_id}:{day.isoformat()}"


def missing_log_alerts(rows: Sequence[Any], tz: ZoneInfo) -> list[dict[str, Any]]:
    """Alerts from `store.queries.unlogged_days` rows (engineer_id, project_id, local_date,
    first_in, last_out, region_code)."""
    return [
        alert(
            missing_log_alert_id(r.engineer_id, r.project_id, r.local_date),
            "missing_log",
            r.region_code,
            day_end(r.local_date, tz).astimezone(dt.UTC),
            engineer_id=r.engineer_id,
            project_id=r.project_id,
            details={
                "date": r.local_date.isoformat(),
                "first_in": r.first_in.isoformat(),
                "last_out": r.last_out.isoformat(),
            },
        )
        for r in rows
    ]
