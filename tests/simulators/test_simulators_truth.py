"""The ground truth, computed by hand on tiny cases (CONTRACT section 4)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shapely.geometry import box

from simulators.truth import (
    Duty,
    Fence,
    Registered,
    Rules,
    Sensor,
    TrainingPlace,
    compute,
    covers,
    training_attendees,
)

TZ = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)
SITE = Fence("P", "440305", box(113.90, 22.50, 113.91, 22.51))  # Shenzhen Nanshan
IN = (113.905, 22.505)
EDGE = (113.91, 22.505)  # on the boundary: on site
OUT = (113.95, 22.505)


@dataclass(frozen=True)
class F:
    engineer_id: str
    msg_id: str
    ts: float
    lon: float
    lat: float
    acc: float | None = 10.0


@dataclass(frozen=True)
class L:
    engineer_id: str
    project_id: str
    ts: float


@dataclass(frozen=True)
class R:
    device_id: str
    ts: float
    metrics: dict[str, float]


def at(hour: float, day: dt.date = DAY) -> float:
    return dt.datetime.combine(day, dt.time(0), tzinfo=TZ).timestamp() + hour * 3600


def run(fixes=(), logs=(), readings=(), engineers=None, sensors=None, **kw):  # type: ignore[no-untyped-def]
    return compute(
        fixes=list(fixes),
        logs=list(logs),
        readings=list(readings),
        fences=[SITE],
        engineers=engineers or {"E": Registered("440305")},
        sensors=sensors or {},
        rules=Rules(),
        **kw,
    )


def test_code_covers_follows_the_contract_text() -> None:
    assert covers("320000", "320102") and covers("320100", "320102")
    assert covers("320102", "320102") and not covers("320102", "320100")
    assert not covers("000000", "320102")


def test_attendance_sums_gaps_up_to_max_gap_and_counts_the_edge() -> None:
    fixes = [
        F("E", "a", at(9), *IN),
        F("E", "b", at(9) + 900, *EDGE),  # exactly max_gap_s: counted, edge is on site
        F("E", "c", at(9) + 1801, *IN),  # 901 s: not counted
        F("E", "d", at(9) + 2000, *IN, acc=150),  # inaccurate: not on site
        F("E", "e", at(9) + 2101, *IN),  # 300 s after c: counted
        F("E", "f", at(9) + 2200, *OUT),
    ]
    t = run(fixes, logs=[L("E", "P", at(10))])
    (row,) = t.attendance
    assert row["minutes_on_site"] == round((900 + 300) / 60, 2)
    assert row["first_in"] == dt.datetime.fromtimestamp(at(9), TZ).isoformat()
    assert row["last_out"] == dt.datetime.fromtimestamp(at(9) + 2101, TZ).isoformat()
    assert row["present"] is False
    assert t.fixes_by_engineer_date["E"] == {DAY.isoformat(): 6}


def test_a_revised_boundary_judges_only_the_fixes_of_its_time() -> None:
    """A project moved at 10:00 (rules.fences.Revision): its old boundary judged the fixes
    before, the new one those from then on, as the monitor does."""
    moved = box(113.95, 22.50, 113.96, 22.51)
    fences = [
        Fence("P", "440305", SITE.polygon, valid_to=at(10)),
        Fence("P", "440305", moved, valid_from=at(10)),
    ]
    fixes = [
        F("E", "old-before", at(9.5), *IN),  # old boundary, its time: on site
        F("E", "new-before", at(9.6), 113.955, 22.505),  # new boundary, too early: not
        F("E", "old-after", at(10.5), *IN),  # old boundary, too late: not
        F("E", "new-after", at(10.6), 113.955, 22.505),  # new boundary, its time: on site
    ]
    t = compute(
        fixes=fixes,
        logs=[],
        readings=[],
        fences=fences,
        engineers={"E": Registered("440305")},
        sensors={},
        rules=Rules(),
    )
    (row,) = t.attendance
    assert row["first_in"] == dt.datetime.fromtimestamp(at(9.5), TZ).isoformat()
    assert row["last_out"] == dt.datetime.fromtimestamp(at(10.6), TZ).isoformat()
    assert row["minutes_on_site"] == 0  # 66 minutes between its two on-site fixes


def test_cross_region_once_per_day_and_filings_by_prefix_and_date() -> None:
    guest = {"G": Registered("440106", (("440300", DAY, DAY),))}  # Guangzhou, filed for day 1
    day2 = DAY + dt.timedelta(days=1)
    fixes = [
        F("G", "a", at(9), *IN),
        F("G", "b", at(9.2), *IN),
        F("G", "c", at(9, day2), *IN),
        F("G", "d", at(9.2, day2), *IN),
    ]
    t = run(fixes, engineers=guest)
    alerts = t.alerts["cross_region_unfiled"]
    assert [(a["engineer_id"], a["project_id"], a["date"]) for a in alerts] == [
        ("G", "P", day2.isoformat())
    ]
    assert alerts[0]["ts"] == at(9, day2)  # the first on-site fix of the day
    # same city (different district): never
    assert not run(fixes, engineers={"G": Registered("440304")}).alerts["cross_region_unfiled"]


def test_impossible_travel_one_alert_per_pair() -> None:
    beijing = (116.4, 39.9)
    fixes = [
        F("E", "a", at(9), *IN),
        F("E", "b", at(9) + 300, *beijing),  # 2000 km in 5 min
        F("E", "c", at(9) + 600, *IN),  # and back
        F("E", "d", at(12), 114.3, 22.7),  # 45 km in ~2.9 h: fine
        F("E", "e", at(12) + 60, 114.3, 22.7, acc=500),  # inaccurate: ignored
    ]
    t = run(fixes)
    assert [a["ts"] for a in t.alerts["impossible_travel"]] == [at(9) + 300, at(9) + 600]
    assert t.borderline == []


def test_missing_log_only_for_closed_days_without_a_log() -> None:
    day2 = DAY + dt.timedelta(days=1)
    fixes = [
        F("E", "a", at(9), *IN),
        F("E", "b", at(9, day2), *IN),
        F("E", "c", at(20, day2), *OUT),  # day 2 not closed: stream time before its end + 1 h
    ]
    t = run(fixes)
    assert [(a["project_id"], a["date"]) for a in t.alerts["missing_log"]] == [
        ("P", DAY.isoformat())
    ]
    t = run(fixes, logs=[L("E", "P", at(11))])
    assert t.alerts["missing_log"] == []
    closing = F("E", "z", at(1.01, day2 + dt.timedelta(days=1)), *OUT)  # 01:00:36 next day
    t = run([*fixes, closing], logs=[L("E", "P", at(11))])
    assert [a["date"] for a in t.alerts["missing_log"]] == [day2.isoformat()]


def test_sensor_threshold_once_per_excursion_and_offline_per_silence() -> None:
    sensors = {"D": Sensor(600, {"t": {"max": 30.0}, "w": {"min": -8.0}}, "P")}
    vals = [10, 31, 35, 30, 31, 10]  # 30 is in range: two excursions
    readings = [R("D", at(0) + 600 * i, {"t": v, "w": -5.0}) for i, v in enumerate(vals)]
    readings.append(R("D", at(0) + 600 * 5 + 1801, {"t": 10, "w": -9.0}))  # silence, then min
    readings.append(R("D", at(0) + 600 * 5 + 1801 + 1800, {"t": 10, "w": -5.0}))  # exactly 3x
    t = run(readings=readings, sensors=sensors)
    assert [(a["metric"], a["ts"]) for a in t.alerts["sensor_threshold"]] == [
        ("t", at(0) + 600),
        ("t", at(0) + 2400),
        ("w", at(0) + 600 * 5 + 1801),
    ]
    (silence,) = t.alerts["device_offline"]
    assert (silence["from_ts"], silence["to_ts"]) == (at(0) + 3000, at(0) + 3000 + 1801)


def test_trailing_silence_needs_the_project_stream_to_move_on() -> None:
    sensors = {"A": Sensor(600, {}, "P"), "B": Sensor(600, {}, "P")}
    readings = [R("A", at(0) + 600 * i, {}) for i in range(10)]
    readings += [R("B", at(0) + 600 * i, {}) for i in range(3)]
    assert run(readings=readings, sensors=sensors).alerts["device_offline"] == []
    t = run(readings=readings, sensors=sensors, trailing_silences=True)
    assert [(a["device_id"], a["to_ts"]) for a in t.alerts["device_offline"]] == [("B", None)]


def test_practice_while_suspended_from_the_day_of_the_suspension() -> None:
    next_day = DAY + dt.timedelta(days=1)
    truth = run(
        fixes=[
            F("E", "before", at(9, DAY - dt.timedelta(days=1)), *IN),
            F("E", "d1", at(9), *IN),
            F("E", "d2", at(10), *EDGE),
            F("E", "off", at(11), *OUT),
            F("E", "next", at(9, next_day), *IN),
        ],
        engineers={"E": Registered("440305", (), DAY)},
    )
    assert [
        (a["project_id"], a["date"], a["ts"]) for a in truth.alerts["practice_while_suspended"]
    ] == [
        ("P", "2026-03-02", at(9)),
        ("P", "2026-03-03", at(9, next_day)),
    ]
    assert run(fixes=[F("E", "a", at(9), *IN)]).alerts["practice_while_suspended"] == []


def test_attendance_counts_a_check_in_to_check_out_shift_whole() -> None:
    @dataclass(frozen=True)
    class K(F):
        kind: str = "position"

    truth = run(
        fixes=[
            K("E", "in", at(9), *IN, kind="checkin"),
            K("E", "p", at(9.1), *IN),  # inside the shift
            K("E", "out", at(17), *IN, kind="checkout"),  # 480 minutes
            K("E", "after", at(17.2), *IN),  # a 12-minute gap after it: 492
        ]
    )
    [row] = truth.attendance
    assert row["minutes_on_site"] == 492.0 and row["present"]


def _day_on_site(engineer: str, day: dt.date, hours: float) -> list[F]:
    """Fixes every 10 minutes from 08:00 for `hours` on site: `hours` * 60 minutes present."""
    n = int(hours * 6)
    return [F(engineer, f"{engineer}-{day}-{k}", at(8 + k / 6, day), *IN) for k in range(n + 1)]


def test_chief_absent_counts_the_chiefs_present_days_of_a_closed_month_by_hand() -> None:
    """Required 2 days in March 2026: the chief present on the 2nd (300 min) and on the 3rd
    for 200 min only (not present), the member there on the 4th: one present day, an alert.
    A second project whose chief is present on two days raises nothing; April is still open
    when judged on 2026-04-15, so the chief's absence that month is not judged yet."""
    d2, d3, d4 = DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    fixes = _day_on_site("C", d2, 5) + _day_on_site("C", d3, 200 / 60) + _day_on_site("M", d4, 5)
    april = dt.date(2026, 4, 7)
    fixes += _day_on_site("M", april, 5)
    duties = [Duty("P", "C", ("C", "M"), 2)]
    now = at(0, dt.date(2026, 4, 15))
    t = run(fixes, engineers={e: Registered("440305") for e in "CM"}, duties=duties, now=now)
    assert t.alerts["chief_absent"] == [
        {"engineer_id": "C", "project_id": "P", "month": "2026-03", "present_days": 1}
    ]
    fixes += _day_on_site("C", DAY + dt.timedelta(days=5), 4)  # a second present day
    t = run(fixes, engineers={e: Registered("440305") for e in "CM"}, duties=duties, now=now)
    assert t.alerts["chief_absent"] == []


def test_training_attendees_are_those_inside_long_enough_by_hand() -> None:
    """A 09:00-11:00 training needing 96 minutes: A inside every 10 minutes 09:00-11:00
    (120 min); B 09:00-10:20 (80 min); C the whole time, but its 10:00 fix has 1 km accuracy
    and does not count, leaving a 20-minute gap over `max_gap_s` (100 min); D outside."""
    place = box(113.90, 22.50, 113.91, 22.51)
    training = TrainingPlace("T", place, at(9), at(11), 96.0)

    def every10(who: str, start_h: float, end_h: float, where=IN) -> list[F]:  # type: ignore[no-untyped-def]
        n = round((end_h - start_h) * 6)
        return [F(who, f"{who}{k}", at(start_h + k / 6), *where) for k in range(n + 1)]

    c = every10("C", 9, 11)
    c[6] = F("C", c[6].msg_id, c[6].ts, *IN, acc=1000.0)
    fixes = every10("A", 9, 11) + every10("B", 9, 10 + 1 / 3) + c + every10("D", 9, 11, OUT)
    by_engineer: dict[str, list[F]] = {}
    for f in fixes:
        by_engineer.setdefault(f.engineer_id, []).append(f)
    got = training_attendees(training, by_engineer.values(), 100.0, 900.0)
    assert got == ["A", "C"]
    assert training_attendees(
        TrainingPlace("T", place, at(9), at(11), 101.0), by_engineer.values(), 100.0, 900.0
    ) == ["A"]
