"""`chief_absent` (CONTRACT §6.5), pure, with hand-computed expectations: which months have
closed, and a chief present on fewer days than required in a supervised month."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from rules.chief_absence import Duty, chief_absent_alerts, closed_months, judge

TZ = ZoneInfo("Asia/Shanghai")
NOV = dt.date(2026, 11, 1)
DUTY = Duty("P1", "440305", "CHIEF", ("M1",), required_days=3)


def day(n: int, month: int = 11) -> dt.date:
    return dt.date(2026, month, n)


def test_a_month_closes_once_the_lateness_after_its_end_has_passed() -> None:
    just_after = dt.datetime(2026, 12, 1, 0, 30, tzinfo=TZ)  # 30 min into December
    assert closed_months(just_after, TZ, 3600)[-1] == dt.date(2026, 10, 1)  # November open
    later = dt.datetime(2026, 12, 1, 1, 0, tzinfo=TZ)
    months = closed_months(later, TZ, 3600)
    assert (months[0], months[-1], len(months)) == (dt.date(2025, 12, 1), NOV, 12)


def test_a_chief_present_two_days_of_three_required_is_absent_once() -> None:
    attendance = [
        ("CHIEF", "P1", day(3), 300.0),  # present
        ("CHIEF", "P1", day(4), 239.0),  # on site, not long enough
        ("CHIEF", "P1", day(5), 240.0),  # present: the limit is inclusive
        ("M1", "P1", day(6), 480.0),
        ("CHIEF", "P2", day(7), 480.0),  # another project does not count
    ]
    [alert] = chief_absent_alerts([DUTY], attendance, [NOV], min_minutes_present=240.0, tz=TZ)
    assert alert["id"] == "chief_absent:P1:2026-11"
    assert (alert["engineer_id"], alert["project_id"], alert["region_code"]) == (
        "CHIEF",
        "P1",
        "440305",
    )
    assert alert["details"]["present_days"] == 2
    assert alert["details"]["days"] == ["2026-11-03", "2026-11-05"]
    assert alert["ts"] == dt.datetime(2026, 11, 30, 15, 59, 59, tzinfo=dt.UTC)  # 23:59:59 +08


def test_enough_days_or_an_unsupervised_month_raise_nothing() -> None:
    enough = [("CHIEF", "P1", day(d), 300.0) for d in (3, 4, 5)]
    assert chief_absent_alerts([DUTY], enough, [NOV], min_minutes_present=240, tz=TZ) == []
    october = dt.date(2026, 10, 1)  # nobody of the project was there in October
    only_nov = [("M1", "P1", day(6), 480.0)]
    alerts = chief_absent_alerts([DUTY], only_nov, [october, NOV], min_minutes_present=240, tz=TZ)
    assert [a["id"] for a in alerts] == ["chief_absent:P1:2026-11"]


def test_a_chief_named_by_a_change_is_judged_from_the_first_whole_month_after_it() -> None:
    attendance = [("M1", "P1", day(6), 480.0), ("M1", "P1", day(6, 10), 480.0)]
    oct_ = dt.date(2026, 10, 1)
    named = Duty("P1", "440305", "CHIEF", ("M1",), 3, dt.datetime(2026, 10, 15, tzinfo=TZ))
    alerts = chief_absent_alerts([named], attendance, [oct_, NOV], min_minutes_present=240, tz=TZ)
    assert [a["id"] for a in alerts] == ["chief_absent:P1:2026-11"]  # October was not theirs


def test_judge_names_the_months_where_the_chief_was_there_enough() -> None:
    """October: the chief present 3 days of 3 (None: an alert of it is retracted); November:
    1 day (the alert); December: nobody there (not judged, so nothing is retracted)."""
    attendance = [("CHIEF", "P1", day(d, 10), 300.0) for d in (1, 2, 3)]
    attendance += [("CHIEF", "P1", day(9), 300.0)]
    months = [dt.date(2026, 10, 1), NOV, dt.date(2026, 12, 1)]
    verdicts = judge([DUTY], attendance, months, min_minutes_present=240, tz=TZ)
    assert sorted(verdicts) == ["chief_absent:P1:2026-10", "chief_absent:P1:2026-11"]
    assert verdicts["chief_absent:P1:2026-10"] is None
    assert verdicts["chief_absent:P1:2026-11"]["details"]["present_days"] == 1  # type: ignore[index]
