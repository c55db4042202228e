"""Engineer alert rules on the real stack with hand-computed expectations (CONTRACT section 4):
`missing_log` raised only once the engineer's stream time closes the day,
`cross_region_unfiled` with filings honoured by code prefix and local date, and
`impossible_travel`, each carrying the region code of the site."""

from __future__ import annotations

from tests.stack_client import StackClient
from tests.streams.scenario import (
    alert_ids,
    alerts,
    fix,
    local,
    log,
    make_engineer,
    make_filing,
    make_project,
    off_site,
    publish,
    tag,
    wait_fixes,
    wait_rows,
)


def missing_logs(sw: StackClient, engineer_id: str) -> set[str]:
    return alert_ids(sw, type="missing_log", engineer_id=engineer_id)


def test_missing_log_raised_only_when_a_later_fix_closes_the_day(sw: StackClient) -> None:
    t = tag()
    p, q = f"ML-P-{t}", f"ML-Q-{t}"
    e, f, g = f"ML-E-{t}", f"ML-F-{t}", f"ML-G-{t}"
    plon, plat = make_project(sw, p)
    qlon, qlat = make_project(sw, q)
    for x in (e, f, g):
        make_engineer(sw, x)
    olon, olat = off_site(plon, plat)
    publish(
        sw,
        [
            # E on site at P, no log at all
            fix(e, f"{t}-e1", local(9), plon, plat),
            fix(e, f"{t}-e2", local(9, 10), plon, plat),
            # F on site at P and Q, a log for P only
            fix(f, f"{t}-f1", local(9), plon, plat),
            fix(f, f"{t}-f2", local(11), qlon, qlat),
            log(f, f"{t}-fl", p, local(12), plon, plat),
            # G on site at P; its next record is a log of the next day, 01:30
            fix(g, f"{t}-g1", local(9), plon, plat),
        ],
    )
    wait_fixes(sw, e, 2)
    wait_fixes(sw, f, 2)
    wait_fixes(sw, g, 1)
    assert missing_logs(sw, e) == missing_logs(sw, f) == missing_logs(sw, g) == set()

    # 2026-03-03 01:00:00 is the day's end plus 3600 s exactly: not past it, still open
    publish(sw, [fix(e, f"{t}-e3", local(1, 0, 0, day=3), olon, olat)])
    wait_fixes(sw, e, 3)
    assert missing_logs(sw, e) == set()

    # one second later the day has closed
    publish(
        sw,
        [
            fix(e, f"{t}-e4", local(1, 0, 1, day=3), olon, olat),
            fix(f, f"{t}-f3", local(2, day=3), olon, olat),
            log(g, f"{t}-gl", p, local(1, 30, day=3), plon, plat),  # any record moves time
        ],
    )
    wait_fixes(sw, e, 4)
    wait_fixes(sw, f, 3)
    wait_rows(sw, "SELECT 1 FROM supervision_logs WHERE msg_id = %s", f"{t}-gl", n=1)
    [a] = alerts(sw, type="missing_log", engineer_id=e)
    assert a["id"] == f"missing_log:{e}:{p}:2026-03-02"
    assert (a["status"], a["region_code"], a["project_id"]) == ("open", "440305", p)
    assert a["ts"] == "2026-03-02T16:00:00Z"  # the end of the local day
    assert a["details"]["first_in"] == "2026-03-02T01:00:00+00:00"
    assert a["details"]["last_out"] == "2026-03-02T01:10:00+00:00"
    assert [h["status"] for h in a["history"]] == ["open"]
    assert missing_logs(sw, f) == {f"missing_log:{f}:{q}:2026-03-02"}
    assert missing_logs(sw, g) == {f"missing_log:{g}:{p}:2026-03-02"}

    # a fix arriving for the closed day, and more closing fixes, change nothing
    publish(
        sw,
        [
            fix(e, f"{t}-e5", local(9, 20), plon, plat),
            fix(e, f"{t}-e6", local(3, day=3), olon, olat),
        ],
    )
    wait_fixes(sw, e, 6)
    assert len(alerts(sw, type="missing_log", engineer_id=e)) == 1


def cross_region(sw: StackClient, engineer_id: str) -> list[str]:
    return sorted(a["id"] for a in alerts(sw, type="cross_region_unfiled", engineer_id=engineer_id))


def test_cross_region_unfiled_filings_by_code_prefix_and_local_date(sw: StackClient) -> None:
    t = tag()
    p = f"XR-P-{t}"
    lon, lat = make_project(sw, p, region="440305")  # 深圳 南山
    names = ("none", "province", "ended", "other_city", "same_city")
    eng = {n: f"XR-{n}-{t}" for n in names}
    for n, x in eng.items():
        make_engineer(sw, x, region="440304" if n == "same_city" else "310104")  # 福田 / 上海 徐汇
    make_filing(sw, eng["province"], "440000", "2026-03-01", "2026-03-31")  # 广东 covers 440305
    make_filing(sw, eng["ended"], "440305", "2026-02-01", "2026-03-01")  # ends the day before
    make_filing(sw, eng["other_city"], "440100", "2026-03-01", "2026-03-31")  # 广州: does not
    messages = []
    for n, x in eng.items():
        messages += [
            fix(x, f"{t}-{n}-1", local(9), lon, lat),
            fix(x, f"{t}-{n}-2", local(10), lon, lat),
        ]
    # 2026-03-01 23:30 local (inside the filing) and 2026-03-02 00:10 local, which is still
    # 2026-03-01 in UTC: the local date decides
    ended = eng["ended"]
    messages += [
        fix(ended, f"{t}-ended-0", local(23, 30, day=1), lon, lat),
        fix(ended, f"{t}-ended-00", local(0, 10), lon, lat),
    ]
    publish(sw, messages)
    for n, x in eng.items():
        wait_fixes(sw, x, 4 if n == "ended" else 2)

    assert cross_region(sw, eng["none"]) == [f"cross_region_unfiled:{eng['none']}:{p}:2026-03-02"]
    assert cross_region(sw, eng["province"]) == []
    assert cross_region(sw, eng["same_city"]) == []
    assert cross_region(sw, eng["other_city"]) == [
        f"cross_region_unfiled:{eng['other_city']}:{p}:2026-03-02"
    ]
    [a] = alerts(sw, type="cross_region_unfiled", engineer_id=ended)
    assert a["id"] == f"cross_region_unfiled:{ended}:{p}:2026-03-02"
    assert a["region_code"] == "440305" and a["project_id"] == p
    # one alert per engineer, project and local date, carrying its earliest fix of the day
    assert a["ts"] == "2026-03-01T16:10:00Z"
    assert a["details"]["msg_id"] == f"{t}-ended-00"
    assert a["details"]["registered_region"] == "310104"


def test_cross_region_alert_keeps_the_earliest_fix_when_fixes_arrive_out_of_order(
    sw: StackClient,
) -> None:
    t = tag()
    p = f"XO-P-{t}"
    lon, lat = make_project(sw, p)
    x = f"XO-E-{t}"
    make_engineer(sw, x, region="310104")
    publish(sw, [fix(x, f"{t}-late", local(10), lon, lat)])
    wait_fixes(sw, x, 1)
    publish(sw, [fix(x, f"{t}-early", local(9, 30), lon, lat)])
    wait_fixes(sw, x, 2)
    [a] = alerts(sw, type="cross_region_unfiled", engineer_id=x)
    assert (a["ts"], a["details"]["msg_id"]) == ("2026-03-02T01:30:00Z", f"{t}-early")
    assert [h["status"] for h in a["history"]] == ["open"]


def test_impossible_travel_carries_the_site_region(sw: StackClient) -> None:
    t = tag()
    p = f"IT-P-{t}"
    lon, lat = make_project(sw, p, region="440305")
    x = f"IT-E-{t}"
    make_engineer(sw, x)
    publish(
        sw,
        [
            fix(x, f"{t}-a", local(9), lon, lat),
            fix(x, f"{t}-b", local(9, 1), lon, lat + 0.1),  # ~11.1 km north in 60 s: ~664 km/h
            fix(x, f"{t}-c", local(11), lon, lat),  # back after 2 h: ~5.5 km/h
        ],
    )
    wait_fixes(sw, x, 3)
    [a] = alerts(sw, type="impossible_travel", engineer_id=x)
    assert a["id"] == f"impossible_travel:{x}:travel:{t}-a:{t}-b"
    assert (a["region_code"], a["project_id"], a["status"]) == ("440305", p, "open")
    assert a["ts"] == "2026-03-02T01:01:00Z"
    assert 11_000 < a["details"]["distance_m"] < 11_200
    assert 600 < a["details"]["speed_kmh"] < 700
