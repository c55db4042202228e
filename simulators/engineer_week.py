"""One engineer's simulated week: day paths, the fixes (SiteWatch JSON or OwnTracks, noisy,
with gaps, re-sent duplicates and a dying battery) and the supervision logs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import Point, Polygon
from shapely.strtree import STRtree

from gm.algorithms import canonical_bytes, sign_sm2
from simulators import world
from simulators.paths import Path, drive, stay
from simulators.plans import (
    LOG_TEXTS,
    OWNTRACKS_DEVICE,
    EngineerPlan,
    FixFact,
    LogFact,
    Message,
    Scenario,
)
from simulators.world import Site, haversine_m, offset


def _encode_ts(ts: float, fmt: str, tz: ZoneInfo) -> Any:
    if fmt == "ms":
        return int(round(ts * 1000))
    if fmt == "iso":
        return dt.datetime.fromtimestamp(ts, tz).isoformat()
    return int(ts)


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _engineer_week(
    rng: random.Random,
    sc: Scenario,
    eng: EngineerPlan,
    tree: STRtree,
    fences: list[Polygon],
    next_seq: Any,
) -> None:
    cfg = sc.config
    tz = cfg.tz
    n_msg = 0
    last_sent: list[Message] = []
    for day in range(cfg.days):
        date = sc.start.date() + dt.timedelta(days=day)
        day0 = dt.datetime.combine(date, dt.time(0), tzinfo=tz).timestamp()
        weekday = date.weekday()
        visit_today = eng.visit is not None and eng.visit[0] == day
        training_today = eng.training is not None and eng.training.day == day
        p_work = 0.95 if weekday < 5 else (0.35 if weekday == 5 else 0.1)
        forced = visit_today or training_today or eng.spoof_day == day
        if not forced and rng.random() > p_work:
            continue
        path, duty_end = _day_path(rng, eng, day0, visit_today, training_today, weekday)
        # fix times
        t = path.t[0] - rng.uniform(0, 600)
        times: list[float] = []
        while t < duty_end:
            times.append(float(int(t)))
            t += rng.uniform(*cfg.fix_interval_s)
        # reporting gap
        gap: tuple[float, float] | None = None
        if rng.random() < cfg.p_gap and len(times) > 10:
            g0 = rng.uniform(times[2], times[-4])
            gap = (g0, g0 + rng.uniform(20, 100) * 60)
        # battery
        low = rng.random() < cfg.p_low_battery
        b0 = rng.uniform(15, 35) if low else rng.uniform(55, 100)
        drain = rng.uniform(4, 9) if not low else rng.uniform(6, 10)
        kept: list[tuple[float, float]] = []  # (ts, battery)
        for ts in times:
            batt = b0 - drain * (ts - times[0]) / 3600
            if batt < 3:
                break  # the phone died
            if gap is not None and gap[0] <= ts <= gap[1]:
                continue
            kept.append((ts, batt))
        if not kept:
            continue
        # which fixes are bad, which one is spoofed
        bad = [rng.random() < cfg.p_bad_fix for _ in kept]
        spoof_k: int | None = None
        if eng.spoof_day == day:
            cands = [
                i
                for i in range(1, len(kept) - 1)
                if path.what(kept[i][0]).startswith("site:")
                and not bad[i - 1]
                and not bad[i + 1]
                and kept[i + 1][0] - kept[i - 1][0] < 1500  # neighbours within 25 min
            ]
            if cands:
                spoof_k = rng.choice(cands)
                bad[spoof_k] = False
        day_fixes: list[tuple[FixFact, float, float, str]] = []  # fact, battery, speed, label
        for i, (ts, batt) in enumerate(kept):
            lon, lat, speed = path.at(ts)
            what = path.what(ts)
            if i == spoof_k:
                if rng.random() < 0.6:  # a mock-location app: another province
                    sx, sy = rng.choice(world.SPOOF_PLACES)
                    sx, sy = offset(sx, sy, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
                else:  # a GPS glitch or a nearby fake: 80-150 km away (>= 320 km/h)
                    r, a = rng.uniform(80_000, 150_000), rng.uniform(0, 2 * math.pi)
                    sx, sy = offset(lon, lat, r * math.cos(a), r * math.sin(a))
                fact = _fix_fact(eng, ts, round(sx, 6), round(sy, 6), 5.0, spoof=True)
                day_fixes.append((fact, batt, 0.0, "spoof"))
                continue
            fx, fy, acc = _noisy(rng, lon, lat, bad[i], tree, fences)
            day_fixes.append((_fix_fact(eng, ts, fx, fy, acc), batt, speed, what))
        # supervision logs: one per site visit, unless forgotten
        visits: dict[str, list[FixFact]] = {}
        for fact, _b, _s, what in day_fixes:
            if what.startswith("site:") and fact.acc <= 60:
                sid = what[5:]
                site = next(s for s in sc.sites if s.id == sid)
                if site.polygon.contains(Point(fact.lon, fact.lat)):
                    visits.setdefault(sid, []).append(fact)
        logs: list[tuple[LogFact, str]] = []
        for sid, facts in visits.items():
            if cfg.violations and rng.random() < cfg.p_missing_log:
                continue
            f = rng.choice(facts)
            ts = f.ts + rng.randint(20, 120)
            msg_id = f"{eng.id}-log-{int(ts)}"
            logs.append((LogFact(eng.id, msg_id, sid, ts, f.lon, f.lat), rng.choice(LOG_TEXTS)))
        if eng.stops_coming_from is not None and date >= eng.stops_coming_from:
            continue  # stays away from then on: nothing is sent
        # messages
        for fact, batt, speed, what in day_fixes:
            if eng.phone != "owntracks":
                fact = dataclasses.replace(fact, kind=_check_kind(fact, what, day_fixes))
            msg = _fix_message(eng, fact, batt, speed, what, day_fixes, tz, next_seq)
            sc.messages.append(msg)
            sc.fixes.append(fact)
            n_msg += 1
            last_sent.append(msg)
            del last_sent[:-3]
            if gap is not None and fact.ts > gap[1] and last_sent and rng.random() < cfg.p_resend:
                # back online: the phone re-sends what it was not sure got through
                for old in last_sent[-rng.randint(1, 3) : -1]:
                    sc.messages.append(
                        Message(fact.ts + 1, next_seq(), eng.id, old.topic, old.payload)
                    )
                    sc.duplicates_sent += 1
                gap = None
        for log, text in logs:
            sc.logs.append(log)
            sc.messages.append(_log_message(eng, log, text, tz, next_seq))
    # the closing record: home, after the last day's end plus the allowed lateness
    hx, hy = eng.home
    fact = _fix_fact(
        eng, float(int(sc.closing_ts)) + rng.randint(0, 300), round(hx, 6), round(hy, 6), 10.0
    )
    sc.fixes.append(fact)
    sc.messages.append(_fix_message(eng, fact, 80.0, 0.0, "home", [], tz, next_seq))


def _fix_fact(
    eng: EngineerPlan, ts: float, lon: float, lat: float, acc: float, spoof: bool = False
) -> FixFact:
    if eng.phone == "owntracks":
        msg_id = f"ot:{eng.id}:{OWNTRACKS_DEVICE}:{int(ts)}"
        return FixFact(eng.id, msg_id, ts, lon, lat, float(int(round(acc))), "owntracks", spoof)
    return FixFact(eng.id, f"{eng.id}-{int(ts)}", ts, lon, lat, round(acc, 1), "checkin", spoof)


def _noisy(
    rng: random.Random,
    lon: float,
    lat: float,
    bad: bool,
    tree: STRtree,
    fences: list[Polygon],
) -> tuple[float, float, float]:
    """A GPS reading of the true position: accuracy and a matching error. Accurate readings
    are re-drawn if they land within 1 m of a fence's edge (the ground truth must not depend on
    rounding at the boundary)."""
    for _ in range(20):
        if bad:
            acc = rng.uniform(150, 900)
            err = rng.uniform(0, acc * 0.6)
        else:
            acc = min(60.0, max(3.0, math.exp(rng.gauss(math.log(10), 0.5))))
            err = min(abs(rng.gauss(0, acc * 0.5)), acc)
        a = rng.uniform(0, 2 * math.pi)
        x, y = offset(lon, lat, err * math.cos(a), err * math.sin(a))
        x, y = round(x, 6), round(y, 6)
        if bad or not _near_edge(x, y, tree, fences):
            return x, y, (float(int(round(acc))) if acc >= 100 else round(acc, 1))
    return x, y, round(acc, 1)


EDGE_M = 1.0


def _near_edge(x: float, y: float, tree: STRtree, fences: list[Polygon]) -> bool:
    p = Point(x, y)
    d = EDGE_M / world.M_PER_DEG_LAT * 2
    for i in tree.query(p.buffer(d)):
        dist = shapely.distance(fences[int(i)].boundary, p) * world.M_PER_DEG_LAT
        if dist < EDGE_M * 2:
            return True
    return False


def _day_path(
    rng: random.Random,
    eng: EngineerPlan,
    day0: float,
    visit_today: bool,
    training_today: bool,
    weekday: int,
) -> tuple[Path, float]:
    depart = day0 + rng.uniform(7.25, 8.5) * 3600
    path = Path(depart, *eng.home)
    stops: list[tuple[Site, float]] = []
    if training_today and eng.training is not None:
        # there before it starts (town driving at 25 km/h), then the afternoon on site
        training = eng.training
        ex, ey = training.place.random_inner_point(rng)
        drive_s = haversine_m(*eng.home, ex, ey) * 1.3 / (25 / 3.6)
        path = Path(training.starts_at.timestamp() - drive_s - rng.uniform(15, 30) * 60, *eng.home)
        t = path.now
        drive(rng, path, ex, ey)
        path.label(t, "travel")
        until = training.starts_at.timestamp() + training.stays_s[eng.id]
        stay(rng, path, training.place, until, label=f"training:{training.id}")
        stops.append((eng.primary, rng.uniform(2.0, 3.5) * 3600))
    elif visit_today and eng.visit is not None:
        target = eng.visit[1]
        stops.append((target, rng.uniform(2.5, 4.5) * 3600))
        if haversine_m(*eng.primary.centre, *target.centre) < 80_000:
            stops.append((eng.primary, rng.uniform(1.5, 2.5) * 3600))
    else:
        morning = rng.uniform(3.0, 5.0 if eng.secondary else 8.5) * 3600
        if weekday >= 5:
            morning = rng.uniform(3.0, 5.0) * 3600
        stops.append((eng.primary, morning))
        if eng.secondary is not None and weekday < 5 and rng.random() < 0.5:
            stops.append((eng.secondary, rng.uniform(2.0, 4.0) * 3600))
    for site, duration in stops:
        ex, ey = site.random_inner_point(rng)
        if eng.role == "visitor_hsr" and haversine_m(*path.here, ex, ey) > 60_000:
            _rail(rng, path, ex, ey)
        else:
            t = path.now
            drive(rng, path, ex, ey)
            path.label(t, "travel")
        stay(rng, path, site, path.now + duration)
    hx, hy = eng.home
    if eng.role == "visitor_hsr" and haversine_m(*path.here, hx, hy) > 60_000:
        _rail(rng, path, hx, hy)
    else:
        drive(rng, path, hx, hy)
    path.wait_until(path.now + rng.uniform(5, 20) * 60)
    return path, path.now


def _rail(rng: random.Random, path: Path, lon: float, lat: float) -> None:
    """Car to the nearer high-speed-rail station, train to the other one, car on."""
    a, b = world.SHENZHEN_NORTH, world.GUANGZHOU_SOUTH
    if haversine_m(*path.here, *b) < haversine_m(*path.here, *a):
        a, b = b, a
    drive(rng, path, *a)
    path.wait_until(path.now + rng.uniform(10, 25) * 60)
    path.go(*b, rng.uniform(160, 185) / 3.6)
    path.wait_until(path.now + rng.uniform(5, 10) * 60)
    drive(rng, path, lon, lat)


def _check_kind(
    fact: FixFact, what: str, day_fixes: list[tuple[FixFact, float, float, str]]
) -> str:
    """A check-in phone checks in with its first fix of a site visit, out with its last."""
    if what.startswith("site:"):
        ts_list = [f.ts for f, _b, _s, w in day_fixes if w == what]
        if ts_list and fact.ts == ts_list[0]:
            return "checkin"
        if ts_list and fact.ts == ts_list[-1]:
            return "checkout"
    return "position"


def _fix_message(
    eng: EngineerPlan,
    fact: FixFact,
    batt: float,
    speed: float,
    what: str,
    day_fixes: list[tuple[FixFact, float, float, str]],
    tz: ZoneInfo,
    next_seq: Any,
) -> Message:
    if eng.phone == "owntracks":
        body: dict[str, Any] = {
            "_type": "location",
            "tid": eng.tid,
            "tst": int(fact.ts),
            "lat": fact.lat,
            "lon": fact.lon,
            "acc": int(fact.acc),
            "vel": int(round(speed)),
            "batt": max(0, min(100, int(batt))),
            "conn": "m",
            "t": "t" if speed < 1 else "u",
        }
        return Message(
            fact.ts, next_seq(), eng.id, f"owntracks/{eng.id}/{OWNTRACKS_DEVICE}", _dumps(body)
        )
    lon, lat = fact.lon, fact.lat
    if eng.crs == "gcj02":
        from geofence.coords import wgs84_to_gcj02  # the published GCJ-02 formula

        gx, gy = wgs84_to_gcj02(lon, lat)
        lon, lat = round(float(gx), 7), round(float(gy), 7)
    kind = fact.kind
    body = {
        "msg_id": fact.msg_id,
        "engineer_id": eng.id,
        "ts": _encode_ts(fact.ts, eng.ts_format, tz),
        "lat": lat,
        "lon": lon,
        "acc": fact.acc,
        "kind": kind,
    }
    if eng.crs == "gcj02":
        body["crs"] = "gcj02"
    _sign(eng, body)
    return Message(fact.ts, next_seq(), eng.id, f"sitewatch/checkin/{eng.id}", _dumps(body))


def _sign(eng: EngineerPlan, body: dict[str, Any]) -> None:
    if eng.sm2_private_key:
        body["sig"] = sign_sm2(
            eng.sm2_private_key, canonical_bytes(body), public_key_hex=eng.sm2_public_key
        )


def _log_message(
    eng: EngineerPlan, log: LogFact, text: str, tz: ZoneInfo, next_seq: Any
) -> Message:
    body = {
        "msg_id": log.msg_id,
        "project_id": log.project_id,
        "ts": _encode_ts(log.ts, eng.ts_format, tz),
        "lat": log.lat,
        "lon": log.lon,
        "text": text,
    }
    _sign(eng, body)
    return Message(log.ts, next_seq(), eng.id, f"sitewatch/logs/{eng.id}", _dumps(body))
