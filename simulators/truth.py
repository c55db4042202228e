"""Ground truth: what a monitor that follows CONTRACT.md section 4 must report for a set of
simulated facts.

Written from the contract's text alone, with its own small implementations (shapely
``covers`` for fences, haversine distances, a prefix test for region codes); it imports
nothing from ``geofence``, ``streams`` or ``store``, so a score of 1.0 is evidence, not an echo.

Where the contract leaves room, the scenario is built so that every reasonable reading gives
the same answer, and this module says which reading it uses:

* ``impossible_travel``: the fixes that count are the accepted ones with accuracy at most
  ``max_accuracy_m``, in event-time order; the scenario keeps every fix next to a spoofed one
  accurate, so including inaccurate fixes would give the same pairs. Distances are great-circle
  (haversine); pairs within 1 % of the distance or speed limit are listed in ``borderline``
  (the scenario never produces any).
* attendance: "consecutive on-site fixes at the same project" are consecutive among that
  project's on-site fixes of the day; a check-in and the next check event among them, when
  it is a check-out at most ``max_shift_s`` later, count whole (CONTRACT §6.5): minutes are
  the length of the union of those shifts and the gaps.
* ``practice_while_suspended``: an on-site fix (the fixes that count for geofencing) on a
  local day on or after the day the engineer's certificate was suspended from.
* ``chief_absent``: for a project with a chief and required days, each calendar month that has
  closed when the truth is computed (its end plus ``allowed_lateness_s`` past) and in which
  the chief or a member has an attendance row there: the chief's ``present`` days there
  that month are fewer than required. One per project and month.
* trainings: the engineers whose usable fixes inside the training's polygon during its window
  (both ends included, a re-sent fix once) cover ``min_minutes_present`` the way attendance
  counts minutes (gaps of at most ``max_gap_s``).
* the dossier's days without a log: per project and engineer, every local day with an on-site
  fix there and no log for it there (closed or not: the dossier lists them all).
* ``notice_overdue``: a simulated notice whose deadline has passed when the truth is computed
  (the simulator closes the ones it closes after the run, so never by their deadline).
* ``missing_log``: a day counts once the engineer's own later records are past its end plus
  ``allowed_lateness_s`` (each engineer sends a closing record after the last day).
* ``device_offline`` (stream time): a silence is a gap between consecutive readings of a device
  longer than ``offline_factor * report_interval_s``; with ``trailing_silences`` also a device
  whose last reading is followed by that much stream time of other devices at its project.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import Point, Polygon
from shapely.strtree import STRtree

EARTH_R = 6_371_008.8

ALERT_TYPES = (
    "cross_region_unfiled",
    "impossible_travel",
    "sensor_threshold",
    "device_offline",
    "missing_log",
    "practice_while_suspended",
    "chief_absent",
    "notice_overdue",
)


@dataclass(frozen=True)
class Rules:
    """The numbers of CONTRACT section 4 (defaults), as configured on the monitor."""

    timezone: str = "Asia/Shanghai"
    max_accuracy_m: float = 100.0
    max_speed_kmh: float = 300.0
    min_jump_m: float = 5000.0
    max_gap_s: float = 900.0
    min_minutes_present: float = 240.0
    allowed_lateness_s: float = 3600.0
    offline_factor: float = 3.0
    max_shift_s: float = 43200.0

    @classmethod
    def from_settings(cls) -> Rules:
        """Read the monitor's SITEWATCH_* settings from the environment (same defaults)."""
        from config.settings import Settings

        s = Settings()
        return cls(
            timezone=s.timezone,
            max_accuracy_m=s.max_accuracy_m,
            max_speed_kmh=s.max_speed_kmh,
            min_jump_m=s.min_jump_m,
            max_gap_s=s.max_gap_s,
            min_minutes_present=s.min_minutes_present,
            allowed_lateness_s=s.allowed_lateness_s,
            offline_factor=s.offline_factor,
            max_shift_s=s.max_shift_s,
        )


@dataclass(frozen=True)
class Fence:
    """A project's boundary; one of a revised project's boundaries judges only the fixes whose
    event time is in [valid_from, valid_to) (rules.fences.Revision)."""

    id: str
    region_code: str
    polygon: Polygon
    valid_from: float = -math.inf
    valid_to: float = math.inf


@dataclass(frozen=True)
class Registered:
    registered_region: str
    filings: tuple[tuple[str, dt.date, dt.date], ...] = ()  # (region, from, to), both included
    suspended_from: dt.date | None = None  # the certificate is not valid from this day on


@dataclass(frozen=True)
class Sensor:
    interval_s: float
    thresholds: Mapping[str, Mapping[str, float]]
    project_id: str = ""


@dataclass(frozen=True)
class Duty:
    project_id: str
    chief: str
    members: tuple[str, ...]
    required_days: int


@dataclass(frozen=True)
class TrainingPlace:
    id: str
    polygon: Polygon
    starts_ts: float
    ends_ts: float
    min_minutes_present: float


@dataclass
class Truth:
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attendance: list[dict[str, Any]] = field(default_factory=list)
    trainings: dict[str, list[str]] = field(default_factory=dict)  # id -> attendees
    # the dossier's days without a log: project -> engineer -> on-site days without a record
    days_without_log: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    fixes_by_engineer_date: dict[str, dict[str, int]] = field(default_factory=dict)
    fix_ids: dict[str, list[str]] = field(default_factory=dict)
    borderline: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(a)))


def city(code: str) -> str:
    return code[:4] + "00"


def covers(outer: str, inner: str) -> bool:
    """CONTRACT section 4: ``inner`` starts with ``outer`` once its trailing 00 pairs go."""
    prefix = outer
    while prefix.endswith("00"):
        prefix = prefix[:-2]
    return bool(prefix) and inner.startswith(prefix)


def covered_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """The length of the union of intervals."""
    total, end = 0.0, -math.inf
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def iso(ts: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).isoformat()


def compute(
    *,
    fixes: Iterable[Any],  # .engineer_id .msg_id .ts .lon .lat .acc
    logs: Iterable[Any],  # .engineer_id .project_id .ts
    readings: Iterable[Any],  # .device_id .ts .metrics
    fences: list[Fence],
    engineers: Mapping[str, Registered],
    sensors: Mapping[str, Sensor],
    rules: Rules,
    trailing_silences: bool = False,
    duties: Iterable[Duty] = (),
    trainings: Iterable[TrainingPlace] = (),
    now: float | None = None,
) -> Truth:
    tz = ZoneInfo(rules.timezone)
    truth = Truth(alerts={t: [] for t in ALERT_TYPES})
    tree = STRtree([f.polygon for f in fences])

    def day_of(ts: float) -> dt.date:
        return dt.datetime.fromtimestamp(ts, tz).date()

    by_engineer: dict[str, list[Any]] = defaultdict(list)
    for f in fixes:
        by_engineer[f.engineer_id].append(f)
    logs_by_engineer: dict[str, list[Any]] = defaultdict(list)
    for g in logs:
        logs_by_engineer[g.engineer_id].append(g)

    on_site: dict[tuple[str, str, dt.date], list[float]] = defaultdict(list)
    checks: dict[tuple[str, str, dt.date], list[tuple[float, str]]] = defaultdict(list)
    cross: dict[tuple[str, str, dt.date], float] = {}
    suspended: dict[tuple[str, str, dt.date], float] = {}
    for eng_id, items in by_engineer.items():
        items.sort(key=lambda f: (f.ts, f.msg_id))
        seen: set[str] = set()
        counts: dict[str, int] = defaultdict(int)
        for f in items:
            if f.msg_id in seen:
                continue
            seen.add(f.msg_id)
            counts[day_of(f.ts).isoformat()] += 1
        truth.fixes_by_engineer_date[eng_id] = dict(sorted(counts.items()))
        truth.fix_ids[eng_id] = sorted(seen)
        reg = engineers.get(eng_id)
        unique = list({f.msg_id: f for f in items}.values())  # a re-sent fix counts once
        usable = [f for f in unique if f.acc is None or f.acc <= rules.max_accuracy_m]
        for f in usable:
            p = Point(f.lon, f.lat)
            day = day_of(f.ts)
            for i in tree.query(p):
                fence = fences[int(i)]
                if not fence.valid_from <= f.ts < fence.valid_to or not fence.polygon.covers(p):
                    continue
                on_site[(eng_id, fence.id, day)].append(f.ts)
                kind = getattr(f, "kind", "position")
                if kind in ("checkin", "checkout"):
                    checks[(eng_id, fence.id, day)].append((f.ts, kind))
                if reg is not None and reg.suspended_from and day >= reg.suspended_from:
                    key = (eng_id, fence.id, day)
                    suspended[key] = min(suspended.get(key, f.ts), f.ts)
                if reg is None or city(fence.region_code) == city(reg.registered_region):
                    continue
                if any(
                    covers(code, fence.region_code) and a <= day <= b for code, a, b in reg.filings
                ):
                    continue
                key = (eng_id, fence.id, day)
                cross[key] = min(cross.get(key, f.ts), f.ts)
        # impossible travel: consecutive usable fixes
        for a, b in zip(usable, usable[1:], strict=False):
            d = haversine_m(a.lon, a.lat, b.lon, b.lat)
            dt_s = b.ts - a.ts
            speed = math.inf if dt_s <= 0 else d / 1000 / (dt_s / 3600)
            near_d = abs(d - rules.min_jump_m) < 0.01 * rules.min_jump_m
            near_v = math.isfinite(speed) and abs(speed - rules.max_speed_kmh) < 0.01 * (
                rules.max_speed_kmh
            )
            if (near_d and speed > rules.max_speed_kmh * 0.99) or (
                near_v and d > rules.min_jump_m * 0.99
            ):
                truth.borderline.append(
                    {"rule": "impossible_travel", "engineer_id": eng_id, "ts": b.ts}
                )
            if d > rules.min_jump_m and speed > rules.max_speed_kmh:
                truth.alerts["impossible_travel"].append(
                    {
                        "engineer_id": eng_id,
                        "ts": b.ts,
                        "time": iso(b.ts, tz),
                        "from_ts": a.ts,
                        "distance_m": round(d, 1),
                        "speed_kmh": round(speed, 1) if math.isfinite(speed) else None,
                    }
                )
    for (eng_id, pid, day), ts in sorted(cross.items()):
        truth.alerts["cross_region_unfiled"].append(
            {
                "engineer_id": eng_id,
                "project_id": pid,
                "date": day.isoformat(),
                "ts": ts,
                "time": iso(ts, tz),
            }
        )

    for (eng_id, pid, day), ts in sorted(suspended.items()):
        truth.alerts["practice_while_suspended"].append(
            {"engineer_id": eng_id, "project_id": pid, "date": day.isoformat(), "ts": ts}
        )

    # attendance
    for (eng_id, pid, day), stamps in sorted(on_site.items()):
        stamps.sort()
        spans = [
            (a, b) for a, b in zip(stamps, stamps[1:], strict=False) if b - a <= rules.max_gap_s
        ]
        events = sorted(checks.get((eng_id, pid, day), []))
        spans += [
            (a, b)
            for (a, k1), (b, k2) in zip(events, events[1:], strict=False)
            if k1 == "checkin" and k2 == "checkout" and b - a <= rules.max_shift_s
        ]
        minutes = covered_seconds(spans) / 60.0
        truth.attendance.append(
            {
                "engineer_id": eng_id,
                "project_id": pid,
                "date": day.isoformat(),
                "first_in": iso(stamps[0], tz),
                "last_out": iso(stamps[-1], tz),
                "minutes_on_site": round(minutes, 2),
                "present": minutes >= rules.min_minutes_present,
                "fixes": len(stamps),
            }
        )

    truth.alerts["chief_absent"] = chief_absences(
        truth.attendance, duties, tz, rules.allowed_lateness_s, now
    )
    truth.trainings = {
        t.id: training_attendees(t, by_engineer.values(), rules.max_accuracy_m, rules.max_gap_s)
        for t in trainings
    }

    # missing_log: on-site days without a log for that project and day, once closed
    logged = {
        (g.engineer_id, g.project_id, day_of(g.ts)) for gs in logs_by_engineer.values() for g in gs
    }
    stream_end: dict[str, float] = {}
    for eng_id in set(by_engineer) | set(logs_by_engineer):
        stamps = [f.ts for f in by_engineer.get(eng_id, [])]
        stamps += [g.ts for g in logs_by_engineer.get(eng_id, [])]
        stream_end[eng_id] = max(stamps)
    for eng_id, pid, day in sorted(on_site):
        if (eng_id, pid, day) in logged:
            continue
        truth.days_without_log.setdefault(pid, {}).setdefault(eng_id, []).append(day.isoformat())
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).timestamp()
        if stream_end[eng_id] > end + rules.allowed_lateness_s:
            truth.alerts["missing_log"].append(
                {"engineer_id": eng_id, "project_id": pid, "date": day.isoformat()}
            )

    # devices
    by_device: dict[str, list[Any]] = defaultdict(list)
    for r in readings:
        by_device[r.device_id].append(r)
    project_end: dict[str, float] = defaultdict(float)
    for dev_id, rs in by_device.items():
        rs.sort(key=lambda r: r.ts)
        project = sensors[dev_id].project_id if dev_id in sensors else ""
        project_end[project] = max(project_end[project], rs[-1].ts)
    for dev_id, rs in sorted(by_device.items()):
        sensor = sensors.get(dev_id)
        if sensor is None:
            continue
        open_: set[str] = set()
        for r in rs:
            for metric, value in r.metrics.items():
                limits = sensor.thresholds.get(metric)
                if not limits:
                    continue
                lo, hi = limits.get("min"), limits.get("max")
                outside = (lo is not None and value < lo) or (hi is not None and value > hi)
                if outside and metric not in open_:
                    open_.add(metric)
                    truth.alerts["sensor_threshold"].append(
                        {
                            "device_id": dev_id,
                            "metric": metric,
                            "ts": r.ts,
                            "time": iso(r.ts, tz),
                            "value": value,
                        }
                    )
                elif not outside:
                    open_.discard(metric)
        limit = rules.offline_factor * sensor.interval_s
        for a, b in zip(rs, rs[1:], strict=False):
            if b.ts - a.ts > limit:
                truth.alerts["device_offline"].append(
                    {
                        "device_id": dev_id,
                        "from_ts": a.ts,
                        "to_ts": b.ts,
                        "from": iso(a.ts, tz),
                        "to": iso(b.ts, tz),
                    }
                )
        if trailing_silences and project_end[sensor.project_id] - rs[-1].ts > limit:
            truth.alerts["device_offline"].append(
                {
                    "device_id": dev_id,
                    "from_ts": rs[-1].ts,
                    "to_ts": None,
                    "from": iso(rs[-1].ts, tz),
                    "to": None,
                }
            )
    return truth


def chief_absences(
    attendance: list[dict[str, Any]],
    duties: Iterable[Duty],
    tz: ZoneInfo,
    allowed_lateness_s: float,
    now: float | None,
) -> list[dict[str, Any]]:
    def month_of(day: str) -> str:
        return day[:7]

    def closed(month: str) -> bool:
        year, m = int(month[:4]), int(month[5:7])
        nxt = dt.date(year + m // 12, m % 12 + 1, 1)
        end = dt.datetime.combine(nxt, dt.time(0), tzinfo=tz).timestamp()
        return end + allowed_lateness_s <= (
            now if now is not None else dt.datetime.now().timestamp()
        )

    out = []
    for duty in duties:
        rows = [
            a
            for a in attendance
            if a["project_id"] == duty.project_id
            and a["engineer_id"] in {duty.chief, *duty.members}
        ]
        for month in sorted({month_of(a["date"]) for a in rows}):
            if not closed(month):
                continue
            present = {
                a["date"]
                for a in rows
                if a["engineer_id"] == duty.chief and a["present"] and month_of(a["date"]) == month
            }
            if len(present) < duty.required_days:
                out.append(
                    {
                        "engineer_id": duty.chief,
                        "project_id": duty.project_id,
                        "month": month,
                        "present_days": len(present),
                    }
                )
    return out


def training_attendees(
    training: TrainingPlace,
    fixes_by_engineer: Iterable[list[Any]],
    max_accuracy_m: float,
    max_gap_s: float,
) -> list[str]:
    out = []
    for items in fixes_by_engineer:
        unique = {f.msg_id: f for f in items}.values()
        inside = sorted(
            f.ts
            for f in unique
            if (f.acc is None or f.acc <= max_accuracy_m)
            and training.starts_ts <= f.ts <= training.ends_ts
            and training.polygon.covers(Point(f.lon, f.lat))
        )
        seconds = sum(b - a for a, b in zip(inside, inside[1:], strict=False) if b - a <= max_gap_s)
        if inside and seconds / 60.0 >= training.min_minutes_present:
            out.append(items[0].engineer_id)
    return sorted(out)


def notice_overdue(notices: Iterable[Any], now: float) -> list[dict[str, Any]]:
    """`.id .engineer_id .project_id .deadline .closed`: a notice whose deadline has passed
    was not closed by it (the simulator closes notices after the run, past their deadlines)."""
    return [
        {"notice_id": n.id, "engineer_id": n.log.engineer_id, "project_id": n.log.project_id}
        for n in notices
        if n.deadline <= now
    ]
