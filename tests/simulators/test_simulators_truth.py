"""The ground truth, computed by hand on tiny cases (CONTRACT section 4)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shapely.geometry import box

from simulators.truth import Fence, Registered, Rules, Sensor, compute, covers

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
