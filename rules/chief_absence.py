"""`chief_absent` (CONTRACT §6.5): the chief engineer of an active project present on fewer
than `required_days_per_month` days of a calendar month, once the month has closed (the wall
clock past its end plus `allowed_lateness_s`). One alert per project and month.

A day counts as present when its attendance is (CONTRACT section 4: `minutes_on_site` at
least `min_minutes_present`). A month is judged only when the project was being supervised
in it: some engineer of the project (its chief or a member) had an on-site fix there that
month. So a project registered today, or not yet started, raises nothing for the months
before; a chief who stops coming while the members keep coming does. A chief named by a
change is judged from the first whole month after the change; the chief named at
registration for every month (the registration applies backwards). Pure: the worker reads
the rows (store.chief_absence) and writes the alerts.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from rules.alerts import alert

MONTHS_BACK = 12  # closed months judged at each check


@dataclass(frozen=True)
class Duty:
    project_id: str
    region_code: str
    chief: str
    members: tuple[str, ...]
    required_days: int
    # when the current chief was made chief by a change (None: since the registration, which
    # applies backwards like a certificate's first status): earlier months are not theirs
    chief_since: dt.datetime | None = None


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(first: dt.date) -> dt.date:
    return (first + dt.timedelta(days=32)).replace(day=1)


def closed_months(now: dt.datetime, tz: ZoneInfo, allowed_lateness_s: float) -> list[dt.date]:
    """The first days of the last `MONTHS_BACK` months that have closed at `now`, oldest first."""
    local = (now - dt.timedelta(seconds=allowed_lateness_s)).astimezone(tz)
    current = month_start(local.date())  # still open
    months: list[dt.date] = []
    first = current
    for _ in range(MONTHS_BACK):
        first = month_start(first - dt.timedelta(days=1))
        months.append(first)
    return sorted(months)


def chief_absent_alerts(
    duties: Sequence[Duty],
    attendance: Iterable[tuple[str, str, dt.date, float]],
    months: Sequence[dt.date],
    *,
    min_minutes_present: float,
    tz: ZoneInfo,
) -> list[dict[str, Any]]:
    """`attendance`: (engineer, project, local date, minutes on site) of the months' days."""
    verdicts = judge(duties, attendance, months, min_minutes_present=min_minutes_present, tz=tz)
    return [a for a in verdicts.values() if a is not None]


def judge(
    duties: Sequence[Duty],
    attendance: Iterable[tuple[str, str, dt.date, float]],
    months: Sequence[dt.date],
    *,
    min_minutes_present: float,
    tz: ZoneInfo,
) -> dict[str, dict[str, Any] | None]:
    """Every (project, month) judged, by alert id: the alert, or None where the chief was
    there enough (an alert of that id raised on fewer fixes is retracted). Months not judged
    (unsupervised, or another chief's) are left out."""
    judged = set(months)
    supervised: set[tuple[str, dt.date]] = set()
    present: dict[tuple[str, str, dt.date], set[dt.date]] = defaultdict(set)
    for engineer, project, day, minutes in attendance:
        month = month_start(day)
        if month not in judged:
            continue
        supervised.add((project, month))
        if minutes >= min_minutes_present:
            present[(engineer, project, month)].add(day)
    out: dict[str, dict[str, Any] | None] = {}
    for duty in duties:
        for month in months:
            if (duty.project_id, month) not in supervised:
                continue
            if duty.chief_since is not None and (
                dt.datetime.combine(month, dt.time(), tz) < duty.chief_since
            ):
                continue  # another chief's month, or only partly this one's
            alert_id = f"chief_absent:{duty.project_id}:{month:%Y-%m}"
            days = sorted(present.get((duty.chief, duty.project_id, month), ()))
            if len(days) >= duty.required_days:
                out[alert_id] = None
                continue
            end = dt.datetime.combine(next_month(month), dt.time(), tz) - dt.timedelta(seconds=1)
            out[alert_id] = alert(
                alert_id,
                "chief_absent",
                duty.region_code,
                end.astimezone(dt.UTC),
                engineer_id=duty.chief,
                project_id=duty.project_id,
                details={
                    "month": f"{month:%Y-%m}",
                    "present_days": len(days),
                    "required_days_per_month": duty.required_days,
                    "days": [d.isoformat() for d in days],
                },
            )
    return out
