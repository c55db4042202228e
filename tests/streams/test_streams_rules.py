"""Pure unit tests of the stream rules (no stack): the functions the worker calls, with
hand-computed expectations. Local days are Asia/Shanghai (UTC+8, no DST)."""

from __future__ import annotations

import datetime as dt
import math
from collections import namedtuple
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import Settings
from geofence.fences import Fence, FenceIndex
from geofence.regions import RegionIndex
from rules.attendance import on_site_fixes
from rules.day_close import (
    MIN_DATE,
    DayCheck,
    EngineerClock,
    advance_clock,
    day_end,
    last_closed_day,
    missing_log_alerts,
)
from rules.engineer_batch import (
    EngineerFacts,
    EngineerState,
    process_engineer_batch,
)
from rules.fences import Fences
from streams import device_batch
from streams.device_batch import DeviceFacts, clock_of, offline_due, outside
from wire.records import Fix, SupervisionLog, Telemetry

TZ = ZoneInfo("Asia/Shanghai")
S = Settings()
LON, LAT, D = 113.93, 22.53, 0.001


def local(h: int, m: int = 0, s: float = 0, day: int = 2) -> float:
    """Epoch seconds of 2026-03-{day} h:m:s in Asia/Shanghai."""
    return dt.datetime(2026, 3, day, h, m, tzinfo=TZ).timestamp() + s


def fences(*extra: Fence) -> Fences:
    site = Fence("P1", shapely.box(LON - D, LAT - D, LON + D, LAT + D), "440305")
    idx = FenceIndex.build([site, *extra])
    return Fences(1, idx, RegionIndex.build([]), {f.id: f.region_code for f in idx.fences})


def fix(msg_id: str, ts: float, lon: float = LON, lat: float = LAT, acc: float | None = 5.0,
        engineer: str = "E1") -> Fix:  # fmt: skip
    return Fix(msg_id, engineer, ts, lon, lat, acc, "position", "checkin")


def run(records: list[Any], states: dict[str, Any] | None = None, facts: Any = None) -> Any:
    return process_engineer_batch(
        records,
        fences=fences(),
        states=states or {},
        facts=facts if facts is not None else {"E1": EngineerFacts("440305", ())},
        settings=S,
    )


# --- geofencing ------------------------------------------------------------------------


def test_fix_exactly_on_the_polygon_edge_and_vertex_counts_as_on_site() -> None:
    out = run(
        [
            fix("edge", local(9), lon=LON + D),  # east edge
            fix("vertex", local(9, 1), lon=LON - D, lat=LAT - D),  # south-west corner
            fix("out", local(9, 2), lon=LON + D + 1e-7),  # a centimetre outside
        ]
    )
    by_id = {r["msg_id"]: r["project_ids"] for r in out.fixes}
    assert by_id == {"edge": ["P1"], "vertex": ["P1"], "out": []}
    keys = {key for key, _us, _region in on_site_fixes(out.fixes, {"P1": "440305"})}
    assert keys == {("E1", "P1", dt.date(2026, 3, 2))}


def test_accuracy_limit_is_inclusive_and_unknown_accuracy_counts() -> None:
    out = run(
        [
            fix("a", local(9), acc=100.0),
            fix("b", local(9, 1), acc=100.01),
            fix("c", local(9, 2), acc=None),
        ]
    )
    assert {r["msg_id"]: r["project_ids"] for r in out.fixes} == {"a": ["P1"], "b": [], "c": ["P1"]}


# --- cross_region_unfiled -------------------------------------------------------------


SH = EngineerFacts("310104", ())  # registered in Shanghai Xuhui; the site is in Shenzhen


def cross(facts: EngineerFacts, ts: float) -> list[dict[str, Any]]:
    return [
        a
        for a in run([fix("x", ts)], facts={"E1": facts}).alerts
        if a["type"] == "cross_region_unfiled"
    ]


def test_cross_region_without_filing_one_alert_per_engineer_project_local_date() -> None:
    out = run([fix("a", local(9)), fix("b", local(10))], facts={"E1": SH})
    alerts = [a for a in out.alerts if a["type"] == "cross_region_unfiled"]
    assert {a["id"] for a in alerts} == {"cross_region_unfiled:E1:P1:2026-03-02"}
    assert all(a["region_code"] == "440305" and a["project_id"] == "P1" for a in alerts)


def test_same_city_other_district_is_not_cross_region() -> None:
    assert cross(EngineerFacts("440304", ()), local(9)) == []  # 福田 vs 南山, both 4403


def test_filing_honoured_by_code_prefix_and_local_date() -> None:
    day = dt.date(2026, 3, 2)
    province = EngineerFacts("310104", (("440000", day, day, None),))
    city = EngineerFacts("310104", (("440300", day, day, None),))
    district = EngineerFacts("310104", (("440305", day, day, None),))
    other_city = EngineerFacts("310104", (("440100", day, day, None),))
    other_project = EngineerFacts("310104", (("440305", day, day, "P-OTHER"),))
    assert cross(province, local(9)) == []
    assert cross(city, local(9)) == []
    assert cross(district, local(9)) == []
    assert cross(other_project, local(9)) == []  # filings are by region and date
    assert len(cross(other_city, local(9))) == 1


def test_filing_ending_the_day_before_raises_and_local_date_decides() -> None:
    ended = EngineerFacts("310104", (("440305", dt.date(2026, 2, 1), dt.date(2026, 3, 1), None),))
    # 2026-03-01 23:59 local is still covered ...
    assert cross(ended, local(23, 59, day=1)) == []
    # ... 2026-03-02 00:10 local is not, although it is still 2026-03-01 in UTC
    ts = local(0, 10)
    assert dt.datetime.fromtimestamp(ts, dt.UTC).date() == dt.date(2026, 3, 1)
    [a] = cross(ended, ts)
    assert a["id"] == "cross_region_unfiled:E1:P1:2026-03-02"
    starts = EngineerFacts("310104", (("440305", dt.date(2026, 3, 2), dt.date(2026, 3, 31), None),))
    assert cross(starts, local(0, 0)) == []


# --- impossible_travel ------------------------------------------------------------------


def test_impossible_travel_alert_carries_the_site_region() -> None:
    # 0.1 degree of latitude is about 11.07 km: in 60 s that is about 664 km/h
    out = run([fix("a", local(9)), fix("b", local(9, 1), lat=LAT + 0.1)])
    [a] = [a for a in out.alerts if a["type"] == "impossible_travel"]
    assert a["id"] == "impossible_travel:E1:travel:a:b"
    assert a["region_code"] == "440305" and a["project_id"] == "P1"  # the site it left
    assert 11_000 < a["details"]["distance_m"] < 11_100
    assert 600 < a["details"]["speed_kmh"] < 700


def test_impossible_travel_names_the_same_site_however_the_fixes_were_batched() -> None:
    """The jump's first fix on the site, then (in a later batch) the jump and a return two
    hours later that pushes the first fix out of the track's window: the alert must still
    name the site the engineer left, as when all three fixes came in one batch."""
    a, b, c = fix("a", local(9)), fix("b", local(9, 1), lat=LAT + 0.1), fix("c", local(11))
    together = [x for x in run([a, b, c]).alerts if x["type"] == "impossible_travel"]
    first = run([a])
    later = run([b, c], states={"E1": first.states["E1"]})
    assert "a" not in {f.msg_id for f in later.states["E1"].track.window}  # a left the window
    split = [x for x in later.alerts if x["type"] == "impossible_travel"]
    assert [(x["id"], x["project_id"]) for x in split] == [
        (x["id"], x["project_id"]) for x in together
    ]
    assert [x["project_id"] for x in split] == ["P1"]


def test_no_impossible_travel_under_5_km_or_under_max_speed() -> None:
    short = run([fix("a", local(9)), fix("b", local(9, 0, 1), lat=LAT + 0.04)])  # ~4.4 km in 1 s
    slow = run([fix("a", local(9)), fix("b", local(11), lat=LAT + 0.1)])  # 11 km in 2 h
    assert [a for a in short.alerts + slow.alerts if a["type"] == "impossible_travel"] == []


def test_out_of_order_gives_the_same_net_events_and_alerts() -> None:
    fixes = [
        fix("a", local(9)),
        fix("b", local(9, 10), lon=LON + 0.01),
        fix("c", local(9, 11), lat=LAT + 0.2),
        fix("d", local(9, 20)),
    ]

    def net(batches: list[list[Fix]]) -> tuple[set[str], set[str]]:
        states: dict[str, Any] = {}
        transitions: set[str] = set()
        alerts: set[str] = set()
        for batch in batches:
            out = run(batch, states)
            states.update(out.states)
            transitions |= {t["id"] for t in out.transitions}
            transitions -= set(out.retracted)
            alerts |= {a["id"] for a in out.alerts}
            alerts -= {f"impossible_travel:{r}" for r in out.retracted}
        return transitions, alerts

    in_order = net([fixes])
    assert net([[f] for f in reversed(fixes)]) == in_order
    assert net([[fixes[2], fixes[0]], [fixes[3]], [fixes[1]]]) == in_order
    assert in_order[0] == {"E1:enter:P1:a", "E1:exit:P1:b", "E1:enter:P1:d"}


# --- missing_log: the engineer's stream time closes days -------------------------------


def test_last_closed_day_is_strictly_past_end_plus_lateness() -> None:
    end = day_end(dt.date(2026, 3, 2), TZ).timestamp()  # 2026-03-03 00:00 local
    assert end == local(0, day=3)
    assert last_closed_day(end + 3600, TZ, 3600) == dt.date(2026, 3, 1)
    assert last_closed_day(end + 3600.001, TZ, 3600) == dt.date(2026, 3, 2)
    assert last_closed_day(end + 3600 + 86400, TZ, 3600) == dt.date(2026, 3, 2)
    assert last_closed_day(end + 3601 + 86400, TZ, 3600) == dt.date(2026, 3, 3)


def test_advance_clock_examines_each_day_once_and_late_fixes_into_closed_days() -> None:
    c0 = EngineerClock()
    c1, checks = advance_clock(
        "E1", c0, [local(9)], [dt.date(2026, 3, 2)], tz=TZ, allowed_lateness_s=3600
    )
    assert c1 == EngineerClock(local(9), dt.date(2026, 3, 1))
    assert checks == [DayCheck("E1", MIN_DATE, dt.date(2026, 3, 1))]
    c2, checks = advance_clock("E1", c1, [local(0, 30, day=3)], [], tz=TZ, allowed_lateness_s=3600)
    assert checks == [] and c2.closed_through == dt.date(2026, 3, 1)
    c3, checks = advance_clock(
        "E1", c2, [local(1, 0, 1, day=3)], [], tz=TZ, allowed_lateness_s=3600
    )
    assert checks == [DayCheck("E1", dt.date(2026, 3, 2), dt.date(2026, 3, 2))]
    # older records do not move stream time back; a fix into a closed day re-examines it
    c4, checks = advance_clock(
        "E1", c3, [local(9)], [dt.date(2026, 3, 2)], tz=TZ, allowed_lateness_s=3600
    )
    assert c4 == c3 and checks == [DayCheck("E1", dt.date(2026, 3, 2), dt.date(2026, 3, 2))]
    assert EngineerClock.from_dict(c4.to_dict()) == c4


def test_logs_move_stream_time_and_engineer_state_round_trips() -> None:
    log = SupervisionLog("L1", "E1", "P1", local(1, 0, 1, day=3), LON, LAT, "巡视", b"{}")
    out = run([fix("a", local(9)), log])
    state = out.states["E1"]
    assert state.clock.stream_ts == local(1, 0, 1, day=3)
    assert state.clock.closed_through == dt.date(2026, 3, 2)
    assert out.day_checks == [DayCheck("E1", MIN_DATE, dt.date(2026, 3, 2))]
    assert out.logs[0]["local_date"] == dt.date(2026, 3, 3)
    assert EngineerState.from_dict(state.to_dict()) == state
    # a value written before the clock existed (a bare TrackState) still loads
    legacy = state.track.to_dict()
    assert EngineerState.from_dict(legacy).track == state.track
    assert EngineerState.from_dict(legacy).clock == EngineerClock()


def test_missing_log_alert_identity_and_time() -> None:
    Row = namedtuple("Row", "engineer_id project_id local_date first_in last_out region_code")
    row = Row("E1", "P1", dt.date(2026, 3, 2), dt.datetime(2026, 3, 2, 1, tzinfo=dt.UTC),
              dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), "440305")  # fmt: skip
    [a] = missing_log_alerts([row], TZ)
    assert a["id"] == "missing_log:E1:P1:2026-03-02"
    assert a["ts"] == dt.datetime(2026, 3, 2, 16, tzinfo=dt.UTC)  # local midnight ending the day
    assert a["region_code"] == "440305" and a["type"] == "missing_log"


# --- sensor_threshold and device_offline -----------------------------------------------


DEV = {"D1": DeviceFacts("P1", "440305", {"tilt": {"max": 5.0}, "water": {"min": 1.0}}, 60.0)}


def tele(msg_id: str, ts: float, **metrics: float) -> Telemetry:
    return Telemetry(msg_id, "D1", ts, metrics, None, None, b"{}")


def test_outside_limits_are_strict() -> None:
    assert not outside(5.0, {"max": 5.0}) and outside(5.01, {"max": 5.0})
    assert not outside(1.0, {"min": 1.0}) and outside(0.99, {"min": 1.0})


def test_sensor_threshold_once_per_excursion_across_batches() -> None:
    t = local(10)
    out1 = device_batch.process(
        [tele("m1", t, tilt=3), tele("m2", t + 60, tilt=6), tele("m3", t + 120, tilt=7)],
        devices=DEV,
        states={},
    )
    assert [a["id"] for a in out1.alerts] == ["sensor_threshold:D1:tilt:m2"]
    out2 = device_batch.process(
        [tele("m5", t + 240, tilt=9), tele("m4", t + 180, tilt=4), tele("m6", t + 300, water=0.5)],
        devices=DEV,
        states=out1.states,
    )
    # sorted by event time: m4 ends the excursion, m5 opens a new one; water is its own metric
    assert [a["id"] for a in out2.alerts] == [
        "sensor_threshold:D1:tilt:m5",
        "sensor_threshold:D1:water:m6",
    ]
    # a late reading (older than the newest processed) opens nothing; redelivery opens nothing
    out3 = device_batch.process(
        [tele("late", t + 200, tilt=99), tele("m6", t + 300, water=0.5)],
        devices=DEV,
        states=out2.states,
    )
    assert out3.alerts == []
    assert len(out3.rows) == 2  # both stored (the sink ignores the duplicate)


def test_stream_clock_gap_is_a_silence_that_already_ended() -> None:
    stream = Settings(offline_clock="stream")
    t = local(10)
    out = device_batch.process(
        [tele("a", t), tele("b", t + 180), tele("c", t + 360.5)],
        devices=DEV,
        states={},
        settings=stream,
    )
    # 180 s = 3 x 60 s is not longer than the limit; 180.5 s is
    [a] = [a for a in out.alerts if a["type"] == "device_offline"]
    since = dt.datetime.fromtimestamp(t + 180, dt.UTC)
    assert a["id"] == f"device_offline:D1:{since.isoformat()}"
    assert a["details"]["clock"] == "stream"
    assert a["ts"] == since + dt.timedelta(seconds=180)
    assert out.newest == {"D1": t + 360.5}
    # the wall clock never decides from event-time gaps
    assert [x for x in device_batch.process([tele("a", t), tele("c", t + 999)], devices=DEV, states={}, settings=Settings(offline_clock="wall")).alerts if x["type"] == "device_offline"] == []  # fmt: skip


def test_clock_of_auto_detects_replay_by_arrival_lag() -> None:
    assert clock_of("auto", 3600, 1000.0, 1000.0 + 3600) == "wall"
    assert clock_of("auto", 3600, 1000.0, 1000.0 + 3601) == "stream"
    assert clock_of("auto", 3600, 1000.0, None) == "wall"
    assert clock_of("wall", 3600, 1000.0, 1e9) == "wall"
    assert clock_of("stream", 3600, 1000.0, 1000.0) == "stream"


Row = namedtuple(
    "Row", "id project_id region_code report_interval_s created_at last_ts last_received_at"
)


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def test_offline_due_wall_clock() -> None:
    now = utc(local(12))
    rows = [
        Row("silent", "P1", "440305", 60.0, utc(local(9)), utc(local(11, 56, 59)), utc(local(11, 56, 59))),
        Row("fine", "P1", "440305", 60.0, utc(local(9)), utc(local(11, 57)), utc(local(11, 57))),
        Row("never", "P1", "440305", 60.0, utc(local(11)), None, None),
        Row("new", "P1", "440305", 60.0, utc(local(11, 58)), None, None),
    ]  # fmt: skip
    due = {a["device_id"]: a for a in offline_due(rows, Settings(offline_clock="wall"), now)}
    assert set(due) == {"silent", "never"}
    assert due["never"]["details"]["last_seen"] == utc(local(11)).isoformat()
    assert due["silent"]["region_code"] == "440305"


def test_offline_due_stream_clock_uses_the_projects_stream_time() -> None:
    now = utc(local(12, day=20))  # weeks later: a replay
    rows = [
        Row("a", "P1", "440305", 60.0, now, utc(local(10, 9)), now),
        Row("b", "P1", "440305", 60.0, now, utc(local(10, 20)), now),
        Row("c", "P1", "440305", 60.0, now, utc(local(10, 17)), now),
        Row("other", "P2", "440305", 60.0, now, utc(local(9)), now),  # alone on its project
        Row("never", "P1", "440305", 60.0, utc(local(9)), None, None),  # wall: registered
    ]
    due = offline_due(rows, Settings(offline_clock="auto"), now)
    # P1's stream time is 10:20: a (11 min) is silent, c (3 min, not more) is not
    assert {a["device_id"]: a["details"]["clock"] for a in due} == {"a": "stream", "never": "wall"}
    [a] = [a for a in due if a["device_id"] == "a"]
    assert a["id"] == f"device_offline:a:{utc(local(10, 9)).isoformat()}"
    assert offline_due(rows, Settings(offline_clock="stream"), now)[0]["device_id"] == "a"
    assert len(offline_due(rows, Settings(offline_clock="stream"), now)) == 1


@pytest.mark.parametrize("setting", ["auto", "wall", "stream"])
def test_settings_accept_the_offline_clocks(setting: str) -> None:
    assert Settings(offline_clock=setting).offline_clock == setting  # type: ignore[arg-type]


# --- bulk sink ------------------------------------------------------------------------------


def test_array_literal_quotes_and_escapes() -> None:
    from streams.bulk import array_literal

    assert array_literal([]) == "{}"
    assert array_literal(["P1", "a,b"]) == '{"P1","a,b"}'
    assert array_literal(['q"x', "b\\s", "{}", "NULL"]) == '{"q\\"x","b\\\\s","{}","NULL"}'


def test_a_key_with_a_check_event_is_recomputed_never_incremented() -> None:
    from rules.attendance import AttendanceBook, Tally, check_event_keys

    day = dt.date(2026, 3, 2)
    key = ("E1", "P1", day)
    book = AttendanceBook(max_gap_s=900)
    book.tallies[key] = Tally(0, 1_000_000, 0, "440305")
    rows = [
        {"engineer_id": "E1", "project_ids": ["P1"], "local_date": day, "kind": "checkout"},
        {"engineer_id": "E1", "project_ids": [], "local_date": day, "kind": "checkin"},
    ]
    assert check_event_keys(rows) == {key}  # the off-site check-in names no key
    plan = book.plan([(key, 2_000_000, "440305")], check_event_keys(rows))
    assert plan.recompute == {key} and plan.increments == {}
    assert book.plan([(key, 2_000_000, "440305")]).increments == {key: [2_000_000]}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(1_500_000_000, 1_900_000_000), min_size=1, max_size=30),
    st.sampled_from(["Asia/Shanghai", "Europe/London", "America/Sao_Paulo", "UTC"]),
    st.sampled_from([0.0, 1.0, 3600.0, 86400.0]),
)
def test_last_closed_day_remembered_equals_computed(
    stamps: list[float], zone: str, lateness: float
) -> None:
    """The remembered span gives what the zone arithmetic gives, in any order of asking,
    day boundaries and their neighbours included."""
    tz = ZoneInfo(zone)

    def computed(ts: float) -> dt.date:
        x = ts - lateness
        day = dt.datetime.fromtimestamp(x, tz).date()
        start = dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp()
        return day - dt.timedelta(days=1 if x > start else 2)

    asked = []
    for ts in stamps:
        boundary = day_end(dt.datetime.fromtimestamp(ts, tz).date(), tz).timestamp() + lateness
        after = math.nextafter(boundary, math.inf)
        asked += [boundary, ts, boundary, after, boundary, after, boundary - 1e-3]
    for ts in asked:
        assert last_closed_day(ts, tz, lateness) == computed(ts), ts
