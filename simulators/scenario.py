"""Scenario generation: who works where, what each phone and device sends, and when.

Pure and seeded: ``build(config, prefix, foreign)`` returns a :class:`Scenario` holding the
registry entries to create (sites, engineers, filings, devices), every message to publish (in
event-time order) and the simulated *facts* the ground truth is computed from
(``simulators.truth``). Nothing here knows how the monitor works; it only knows CONTRACT.md's
wire formats.

The model, per engineer and local day (Asia/Shanghai by default):

* a working day (Mon-Fri mostly, some Saturdays) starts at home between 07:15 and 08:30, drives
  (25-40 km/h in town, 50-75 km/h between cities, high-speed rail Shenzhen North - Guangzhou
  South at ~170 km/h for some visits) to the primary site, walks between random points on
  site (0.8-1.3 m/s, pauses of 5-40 min), maybe moves to a second site in the afternoon, and
  drives home around 17:00-19:00;
* the phone reports every ``fix_interval_s`` (5-10 min by default) while on duty, with GPS
  noise matching its reported accuracy, occasional bad fixes (accuracy 150-900 m), reporting
  gaps of 20-100 min (sometimes followed by re-sent duplicates), and a battery that drains and
  can die;
* phones speak either the SiteWatch check-in JSON (WGS-84 or GCJ-02, timestamps in epoch s, ms
  or ISO-8601) or OwnTracks JSON;
* a supervision log is written once per site visit, except when it is forgotten.

Injected violations: engineers registered in another city practising without a filing (or with
a filing that expires or starts mid-week), visits to a site in another city, location spoofing
(a fix hundreds of km away), devices that go silent, and sensor excursions.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import Point, Polygon
from shapely.strtree import STRtree

from gm.algorithms import canonical_bytes, generate_sm2_keypair, sign_sm2, sm3_hmac_hex
from simulators import world
from simulators.world import PLACE, Site, haversine_m, offset

LOG_TEXTS = (
    "巡视检查：钢筋绑扎符合设计要求，已签认隐蔽工程验收记录。",
    "旁站监理：C30混凝土浇筑，坍落度抽检合格，试块已留置。",
    "基坑监测数据正常，支护结构无异常变形。",
    "检查塔吊安全装置，限位器有效，司机持证上岗。",
    "模板支撑体系验收，立杆间距及扫地杆设置符合方案。",
    "督促施工单位整改临边防护缺失问题，已下发监理通知单。",
    "主体结构实测实量，垂直度、平整度满足规范要求。",
    "审核进场材料质量证明文件，见证取样送检。",
)
OWNTRACKS_DEVICE = "phone"


# --- configuration ----------------------------------------------------------------------


@dataclass
class Config:
    scenario: str = "week"
    engineers: int = 50
    devices: int = 20
    days: int = 7
    seed: int = 1
    start: dt.datetime | None = None  # local midnight; default: days + 1 days ago
    timezone: str = "Asia/Shanghai"
    fix_interval_s: tuple[float, float] = (300.0, 600.0)
    device_interval_s: int = 900
    allowed_lateness_s: float = 3600.0
    # violations and imperfections
    violations: bool = True
    p_spoofer: float = 0.08  # share of engineers who spoof their location once
    p_missing_log: float = 0.07  # per site visit
    p_gap: float = 0.3  # per day: one reporting gap of 20-100 min
    p_resend: float = 0.5  # after a gap: the last fixes are sent again (duplicates)
    p_bad_fix: float = 0.04  # accuracy 150-900 m
    p_low_battery: float = 0.08  # per day: starts with 15-35 %
    devices_per_site: int = 3  # at most; more sites are drawn when needed
    p_outage: float = 0.35  # share of devices with one outage of 4-16 report intervals
    p_missed_reading: float = 0.01  # a single reading lost (no alert: 2 intervals)
    p_excursion_event: float = 0.6  # devices with excursion events
    dead_devices: int = 0  # devices that stop for good on the last day

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def start_local(self, now: dt.datetime | None = None) -> dt.datetime:
        if self.start is not None:
            return self.start.astimezone(self.tz)
        today = (now or dt.datetime.now(dt.UTC)).astimezone(self.tz).date()
        first = today - dt.timedelta(days=self.days + 1)
        return dt.datetime.combine(first, dt.time(0), tzinfo=self.tz)


SCENARIOS: dict[str, dict[str, Any]] = {
    "week": {"engineers": 50, "devices": 20, "days": 7},
    "smoke": {"engineers": 8, "devices": 4, "days": 2},
    "day": {"engineers": 20, "devices": 8, "days": 1},
    "clean": {"engineers": 30, "devices": 10, "days": 3, "violations": False},
    "city": {"engineers": 200, "devices": 60, "days": 7},
}

ROLE_SHARES = (  # (role, share of engineers)
    ("local_sz", 0.45),
    ("local_gz", 0.15),
    ("guest_filed", 0.10),
    ("guest_expiring", 0.05),
    ("guest_late_filing", 0.03),
    ("guest_unfiled", 0.07),
    ("visitor_unfiled", 0.06),
    ("visitor_filed", 0.05),
    ("visitor_hsr", 0.04),
)
VIOLATION_ROLES = {
    "guest_expiring",
    "guest_late_filing",
    "guest_unfiled",
    "visitor_unfiled",
    "visitor_hsr",
}


def role_counts(n: int, violations: bool) -> list[str]:
    shares = [(r, s) for r, s in ROLE_SHARES if violations or r not in VIOLATION_ROLES]
    total = sum(s for _, s in shares)
    raw = [(r, n * s / total) for r, s in shares]
    counts = {r: int(x) for r, x in raw}
    if n >= 20:  # every role at least once in a scenario of some size
        for r, _ in raw:
            counts[r] = max(counts[r], 1)
    left = n - sum(counts.values())
    for r, _x in sorted(raw, key=lambda rx: rx[1] - int(rx[1]), reverse=True):
        if left <= 0:
            break
        counts[r] += 1
        left -= 1
    while sum(counts.values()) > n:  # tiny scenarios: trim the largest
        big = max(counts, key=lambda r: counts[r])
        counts[big] -= 1
    out = [r for r, _ in raw for _ in range(counts[r])]
    return out


# --- plans and facts ------------------------------------------------------------------------


@dataclass
class Filing:
    region_code: str
    valid_from: dt.date
    valid_to: dt.date
    project_id: str | None = None

    def body(self, engineer_id: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "engineer_id": engineer_id,
            "region_code": self.region_code,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat(),
        }
        if self.project_id:
            d["project_id"] = self.project_id
        return d


@dataclass
class EngineerPlan:
    id: str
    name: str
    role: str
    registered_region: str
    home: tuple[float, float]
    primary: Site
    secondary: Site | None
    visit: tuple[int, Site] | None  # (day index, site in another city)
    phone: str  # 'checkin' | 'owntracks'
    crs: str  # checkin phones: 'wgs84' | 'gcj02'
    ts_format: str  # 's' | 'ms' | 'iso'
    filings: list[Filing] = field(default_factory=list)
    spoof_day: int | None = None
    tid: str = "SW"
    sm2_private_key: str | None = None  # signs every check-in and log (CONTRACT section 3)
    sm2_public_key: str | None = None


@dataclass
class DevicePlan:
    id: str
    site: Site
    kind: str
    interval_s: int
    thresholds: dict[str, dict[str, float]]
    position: tuple[float, float]
    hmac_key: str = ""  # hex; sent at registration, MACs every reading
    outages: list[tuple[float, float]] = field(default_factory=list)
    dead_from: float | None = None


@dataclass(frozen=True)
class FixFact:
    engineer_id: str
    msg_id: str  # as the monitor knows it (OwnTracks ids are derived, CONTRACT section 3)
    ts: float
    lon: float  # WGS-84, as the phone measured it (before any GCJ-02 encoding)
    lat: float
    acc: float
    source: str
    spoof: bool = False


@dataclass(frozen=True)
class LogFact:
    engineer_id: str
    msg_id: str
    project_id: str
    ts: float
    lon: float
    lat: float


@dataclass(frozen=True)
class ReadingFact:
    device_id: str
    msg_id: str
    ts: float
    metrics: dict[str, float]
    marker: bool = False  # the end-of-run marker excursion


@dataclass
class Message:
    ts: float  # when the phone / device sends it (simulated time): the publish order
    seq: int
    identity: str
    topic: str
    payload: bytes


@dataclass
class Scenario:
    config: Config
    prefix: str
    start: dt.datetime  # local midnight
    end: dt.datetime  # start + days
    closing_ts: float  # the engineers' last record (closes the last day for missing_log)
    sites: list[Site]
    engineers: list[EngineerPlan]
    devices: list[DevicePlan]
    fixes: list[FixFact]
    logs: list[LogFact]
    readings: list[ReadingFact]
    messages: list[Message]
    duplicates_sent: int = 0
    injected: dict[str, Any] = field(default_factory=dict)


# --- paths ----------------------------------------------------------------------------------


class Path:
    """A piecewise-linear trajectory: keypoints (t, lon, lat), interpolated in between."""

    def __init__(self, t: float, lon: float, lat: float) -> None:
        self.t = [t]
        self.pts = [(lon, lat)]
        self.labels: list[tuple[float, float, str]] = []  # (from, to, what)

    @property
    def now(self) -> float:
        return self.t[-1]

    @property
    def here(self) -> tuple[float, float]:
        return self.pts[-1]

    def go(self, lon: float, lat: float, speed_mps: float) -> None:
        d = haversine_m(*self.here, lon, lat)
        self.t.append(self.now + max(d / speed_mps, 1.0))
        self.pts.append((lon, lat))

    def wait_until(self, t: float) -> None:
        if t > self.now:
            self.t.append(t)
            self.pts.append(self.here)

    def label(self, start: float, what: str) -> None:
        self.labels.append((start, self.now, what))

    def at(self, t: float) -> tuple[float, float, float]:
        """(lon, lat, speed km/h) at time t (clamped to the path's span)."""
        if t <= self.t[0]:
            return self.pts[0][0], self.pts[0][1], 0.0
        if t >= self.t[-1]:
            return self.pts[-1][0], self.pts[-1][1], 0.0
        i = bisect.bisect_right(self.t, t)
        t0, t1 = self.t[i - 1], self.t[i]
        (x0, y0), (x1, y1) = self.pts[i - 1], self.pts[i]
        f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        speed = haversine_m(x0, y0, x1, y1) / (t1 - t0) * 3.6 if t1 > t0 else 0.0
        return x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, speed

    def what(self, t: float) -> str:
        for a, b, w in self.labels:
            if a <= t <= b:
                return w
        return "travel"


def drive(rng: random.Random, path: Path, lon: float, lat: float) -> None:
    """Drive from where the path is to (lon, lat) via a bend (roads are not straight)."""
    x0, y0 = path.here
    d = haversine_m(x0, y0, lon, lat)
    speed = rng.uniform(50, 75) if d > 20_000 else rng.uniform(25, 40)
    mx, my = (x0 + lon) / 2, (y0 + lat) / 2
    bend = rng.uniform(-0.15, 0.15) * d
    # perpendicular in metres
    ex = (lon - x0) * world.metres_per_deg_lon(my)
    ny = (lat - y0) * world.M_PER_DEG_LAT
    norm = math.hypot(ex, ny) or 1.0
    bx, by = offset(mx, my, -ny / norm * bend, ex / norm * bend)
    path.go(bx, by, speed / 3.6)
    path.go(lon, lat, speed / 3.6)


def stay(rng: random.Random, path: Path, site: Site, until: float) -> None:
    """Walk between random points on site with pauses until ``until``."""
    start = path.now
    while path.now < until:
        x, y = site.random_inner_point(rng)
        path.go(x, y, rng.uniform(0.8, 1.3))
        path.wait_until(min(until, path.now + rng.uniform(300, 2400)))
    path.label(start, f"site:{site.id}")


# --- generation -------------------------------------------------------------------------------


def build(
    config: Config,
    prefix: str,
    foreign: list[tuple[str, str, Polygon]] | None = None,
    now: dt.datetime | None = None,
) -> Scenario:
    """Generate a scenario. ``foreign``: (id, region_code, polygon) of projects the monitor
    already has; sites are drawn away from them."""
    rng = random.Random(config.seed)
    start = config.start_local(now)
    end = start + dt.timedelta(days=config.days)
    closing_ts = end.timestamp() + config.allowed_lateness_s + 600
    foreign = foreign or []
    foreign_polys = [p for _, _, p in foreign]

    roles = role_counts(config.engineers, config.violations)
    sites = _draw_sites(rng, prefix, config, roles, foreign_polys)
    by_city: dict[str, list[Site]] = {}
    for s in sites:
        by_city.setdefault(s.place.city, []).append(s)
    fences = [s.polygon for s in sites] + foreign_polys

    engineers = _plan_engineers(rng, config, prefix, roles, sites, by_city, fences, start)
    devices = _plan_devices(rng, config, prefix, sites, start, end)

    sc = Scenario(config, prefix, start, end, closing_ts, sites, engineers, devices, [], [], [], [])
    tree = STRtree(fences)
    seq = [0]

    def next_seq() -> int:
        seq[0] += 1
        return seq[0]

    for eng in engineers:
        _engineer_week(rng, sc, eng, tree, fences, next_seq)
    for dev in devices:
        _device_week(rng, sc, dev, next_seq)
    sc.messages.sort(key=lambda m: (m.ts, m.seq))
    sc.fixes.sort(key=lambda f: (f.engineer_id, f.ts))
    sc.injected.update(
        {
            "roles": {r: roles.count(r) for r in dict.fromkeys(roles)},
            "spoofers": sorted(e.id for e in engineers if e.spoof_day is not None),
            "devices_with_outages": sorted(d.id for d in devices if d.outages),
            "dead_devices": sorted(d.id for d in devices if d.dead_from is not None),
        }
    )
    return sc


def _draw_sites(
    rng: random.Random,
    prefix: str,
    config: Config,
    roles: list[str],
    foreign: list[Polygon],
) -> list[Site]:
    n_sz = max(2, round(config.engineers * 0.7 / 6))
    n_gz = max(1, round(config.engineers * 0.2 / 6))
    # enough work sites for at most devices_per_site devices each (Shenzhen gets 3 of 4)
    short = -(-config.devices // max(1, config.devices_per_site)) - (n_sz + n_gz)
    if short > 0:
        n_gz += short // 4
        n_sz += short - short // 4
    wanted: list[str] = []
    for i in range(n_sz):
        wanted.append(world.SHENZHEN[i % len(world.SHENZHEN)])
    for i in range(n_gz):
        wanted.append(world.GUANGZHOU[i % len(world.GUANGZHOU)])
    if any(r.startswith("visitor") for r in roles):
        wanted += list(world.ELSEWHERE)  # Dongguan and Foshan
        if n_gz < 2:
            wanted.append(world.GUANGZHOU[1])
    return world.draw_sites(rng, prefix, wanted, foreign)


def _plan_engineers(
    rng: random.Random,
    config: Config,
    prefix: str,
    roles: list[str],
    sites: list[Site],
    by_city: dict[str, list[Site]],
    fences: list[Polygon],
    start: dt.datetime,
) -> list[EngineerPlan]:
    sz = by_city.get("440300", [])
    gz = by_city.get("440100", [])
    elsewhere = [s for s in sites if s.place.city not in ("440300", "440100")]
    # a site's pool of regular workers: balanced round robin
    plans: list[EngineerPlan] = []
    first = start.date()
    last = first + dt.timedelta(days=config.days - 1)
    order = list(range(len(roles)))
    rng.shuffle(order)
    sz_i = gz_i = 0
    for n, k in enumerate(order):
        role = roles[k]
        eid = f"{prefix}-E{n + 1:03d}"
        works_gz = role == "local_gz" or not sz
        pool = gz if works_gz and gz else sz
        if pool is gz:
            primary = gz[gz_i % len(gz)]
            gz_i += 1
        else:
            primary = sz[sz_i % len(sz)]
            sz_i += 1
        others = [s for s in pool if s is not primary]
        secondary = rng.choice(others) if others and rng.random() < 0.35 else None
        if role in ("local_sz", "visitor_unfiled", "visitor_filed", "visitor_hsr"):
            registered = rng.choice([PLACE[p].region_code for p in world.SHENZHEN])
        elif role == "local_gz":
            registered = primary.region_code if rng.random() < 0.5 else PLACE["baiyun"].region_code
        else:  # guests: registered in Guangzhou (or Foshan), working in Shenzhen
            registered = rng.choice(
                [PLACE[p].region_code for p in (*world.GUANGZHOU, "nanhai", "chancheng")]
            )
        home_base = primary.centre
        home = world.home_near(rng, *home_base, fences, 3000, 12000)
        filings: list[Filing] = []
        visit: tuple[int, Site] | None = None
        if role == "guest_filed":
            choice = rng.random()
            if choice < 0.4:
                filings.append(
                    Filing("440300", first - dt.timedelta(days=30), last + dt.timedelta(days=60))
                )
            elif choice < 0.7:
                filings.append(
                    Filing(
                        primary.region_code,
                        first - dt.timedelta(days=10),
                        last + dt.timedelta(days=10),
                        primary.id,
                    )
                )
                if secondary is not None and secondary.region_code != primary.region_code:
                    filings.append(Filing(secondary.region_code, first, last))
            else:
                filings.append(
                    Filing("440000", first - dt.timedelta(days=5), last)
                )  # province-wide
        elif role == "guest_expiring":
            filings.append(
                Filing(
                    "440300",
                    first - dt.timedelta(days=60),
                    first + dt.timedelta(days=config.days // 2),
                )
            )
        elif role == "guest_late_filing":
            filings.append(
                Filing(
                    "440300",
                    first + dt.timedelta(days=min(2, config.days - 1)),
                    last + dt.timedelta(days=90),
                )
            )
        if role.startswith("visitor"):
            day = _weekday_index(rng, start, config.days)
            if role == "visitor_hsr":
                target = rng.choice(gz) if gz else rng.choice(elsewhere or sites)
            else:
                target = rng.choice(elsewhere or gz or sites)
            visit = (day, target)
            if role == "visitor_filed":
                d = first + dt.timedelta(days=day)
                filings.append(
                    Filing(target.region_code, d - dt.timedelta(days=1), d + dt.timedelta(days=2))
                )
        phone = "owntracks" if rng.random() < 0.3 else "checkin"
        plans.append(
            EngineerPlan(
                id=eid,
                name=f"监理工程师{n + 1}",
                role=role,
                registered_region=registered,
                home=home,
                primary=primary,
                secondary=secondary,
                visit=visit,
                phone=phone,
                crs="gcj02" if phone == "checkin" and rng.random() < 0.4 else "wgs84",
                ts_format=rng.choice(("s", "s", "ms", "iso")),
                filings=filings,
                tid=f"{chr(65 + n % 26)}{chr(65 + (n // 26) % 26)}",
            )
        )
    if config.violations:  # spoofers: a share of the engineers, at least one
        for p in rng.sample(plans, max(1, round(config.engineers * config.p_spoofer))):
            p.spoof_day = _weekday_index(rng, start, config.days)
    # a few phones sign with SM2 (signing costs ~7 ms: keep them few)
    for p in [p for p in plans if p.phone == "checkin"][: max(1, config.engineers // 50)]:
        p.sm2_private_key, p.sm2_public_key = generate_sm2_keypair()
    return plans


def _weekday_index(rng: random.Random, start: dt.datetime, days: int) -> int:
    weekdays = [i for i in range(days) if (start.date() + dt.timedelta(days=i)).weekday() < 5]
    return rng.choice(weekdays or list(range(days)))


SENSOR_KINDS = ("foundation_pit", "tower_crane", "environment")
THRESHOLDS: dict[str, dict[str, dict[str, float]]] = {
    "foundation_pit": {
        "displacement_mm": {"max": 30.0},
        "water_level_m": {"min": -8.0, "max": -3.0},
    },
    "tower_crane": {"load_t": {"max": 8.0}, "wind_speed_ms": {"max": 20.0}},
    "environment": {"pm10_ugm3": {"max": 150.0}, "noise_db": {"max": 75.0}},
}


def _plan_devices(
    rng: random.Random,
    config: Config,
    prefix: str,
    sites: list[Site],
    start: dt.datetime,
    end: dt.datetime,
) -> list[DevicePlan]:
    work_sites = [s for s in sites if s.place.city in ("440300", "440100")] or sites
    out: list[DevicePlan] = []
    t0, t1 = start.timestamp(), end.timestamp()
    span = t1 - t0
    for k in range(config.devices):
        site = work_sites[k % len(work_sites)]  # round robin: at most devices_per_site each
        kind = SENSOR_KINDS[(k // len(work_sites) + k) % len(SENSOR_KINDS)]
        dev = DevicePlan(
            id=f"{prefix}-D{k + 1:02d}",
            site=site,
            kind=kind,
            interval_s=config.device_interval_s,
            thresholds=THRESHOLDS[kind],
            position=site.random_inner_point(rng),
            hmac_key=rng.randbytes(32).hex(),
        )
        out.append(dev)
    if config.violations and span > 86400 and out:
        for dev in rng.sample(out, max(1, round(len(out) * config.p_outage))):
            a = t0 + rng.uniform(0.1, 0.85) * span
            # 4-16 report intervals: well over the offline limit of 3
            dev.outages.append((a, a + rng.uniform(4, 16) * dev.interval_s))
    if config.violations:
        # the dead devices are at sites with other devices that keep reporting
        crowded = [d for d in out if sum(1 for e in out if e.site is d.site) >= 2 and not d.outages]
        for dev in crowded[: config.dead_devices]:
            dev.dead_from = t1 - rng.uniform(0.3, 0.6) * 86400
    return out


# --- engineers ---------------------------------------------------------------------------------


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
        p_work = 0.95 if weekday < 5 else (0.35 if weekday == 5 else 0.1)
        if not visit_today and eng.spoof_day != day and rng.random() > p_work:
            continue
        path, duty_end = _day_path(rng, eng, day0, visit_today, weekday)
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
        # messages
        for fact, batt, speed, what in day_fixes:
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
    rng: random.Random, eng: EngineerPlan, day0: float, visit_today: bool, weekday: int
) -> tuple[Path, float]:
    depart = day0 + rng.uniform(7.25, 8.5) * 3600
    path = Path(depart, *eng.home)
    stops: list[tuple[Site, float]] = []
    if visit_today and eng.visit is not None:
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
    kind = "position"
    if what.startswith("site:"):
        ts_list = [f.ts for f, _b, _s, w in day_fixes if w == what]
        if ts_list and fact.ts == ts_list[0]:
            kind = "checkin"
        elif ts_list and fact.ts == ts_list[-1]:
            kind = "checkout"
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


# --- devices -----------------------------------------------------------------------------------


def _device_week(rng: random.Random, sc: Scenario, dev: DevicePlan, next_seq: Any) -> None:
    """Readings every ``interval_s`` (jitter of a few seconds) from the start to the engineers'
    closing time, minus outages and single lost readings; then one *marker* reading just
    after: a deliberate excursion of the device's first metric (a sensor self-test), so
    ``sitewatch score`` can see when the monitor has processed the device's whole stream."""
    cfg = sc.config
    tz = cfg.tz
    t0 = sc.start.timestamp() + rng.uniform(0, dev.interval_s)
    t_end = sc.closing_ts
    span_days = max(1.0, (t_end - t0) / 86400)
    events = _excursion_events(rng, cfg, dev, t0, t_end) if cfg.violations else []
    drift_to = rng.uniform(10, 22)
    level0 = rng.uniform(-6.5, -4.5)
    k = 0
    missed_last = False
    ts = t0
    while True:
        ts = float(int(t0 + k * dev.interval_s + rng.uniform(-5, 5)))
        k += 1
        if ts > t_end:
            break
        if any(a <= ts <= b for a, b in dev.outages):
            continue
        if dev.dead_from is not None and ts >= dev.dead_from:
            return
        if not missed_last and rng.random() < cfg.p_missed_reading:
            missed_last = True  # never two in a row: a gap of 3 intervals is not a silence
            continue
        missed_last = False
        frac = (ts - t0) / (span_days * 86400)
        local = dt.datetime.fromtimestamp(ts, tz)
        metrics = _metrics(
            rng, dev, ts, local.hour + local.minute / 60, frac, drift_to, level0, events
        )
        _reading(sc, dev, ts, metrics, next_seq)
    # the marker: the previous reading is in range (excursion events end hours before)
    metric = sorted(dev.thresholds)[0]
    limits = dev.thresholds[metric]
    local = dt.datetime.fromtimestamp(ts, tz)
    metrics = _metrics(rng, dev, ts, local.hour + local.minute / 60, 1.0, drift_to, level0, [])
    if "max" in limits:
        metrics[metric] = round(limits["max"] + max(abs(limits["max"]), 1.0) * 0.2, 2)
    else:
        metrics[metric] = round(limits["min"] - max(abs(limits["min"]), 1.0) * 0.2, 2)
    _reading(sc, dev, ts, metrics, next_seq, marker=True)


def _reading(
    sc: Scenario,
    dev: DevicePlan,
    ts: float,
    metrics: dict[str, float],
    next_seq: Any,
    marker: bool = False,
) -> None:
    msg_id = f"{dev.id}-{int(ts)}"
    sc.readings.append(ReadingFact(dev.id, msg_id, ts, metrics, marker))
    body: dict[str, Any] = {"msg_id": msg_id, "ts": int(ts), "metrics": metrics}
    if dev.kind == "tower_crane":
        body["lon"], body["lat"] = round(dev.position[0], 6), round(dev.position[1], 6)
    body["mac"] = sm3_hmac_hex(bytes.fromhex(dev.hmac_key), canonical_bytes(body))
    sc.messages.append(
        Message(ts, next_seq(), dev.id, f"sitewatch/devices/{dev.id}/telemetry", _dumps(body))
    )


def _excursion_events(
    rng: random.Random, cfg: Config, dev: DevicePlan, t0: float, t1: float
) -> list[tuple[str, float, float, float]]:
    """(metric, from, to, level) windows where a metric is pushed outside its limits."""
    out: list[tuple[str, float, float, float]] = []
    if rng.random() > cfg.p_excursion_event:
        return out
    n = rng.randint(1, 3)
    for _ in range(n):
        metric = rng.choice(sorted(dev.thresholds))
        limits = dev.thresholds[metric]
        a = rng.uniform(t0 + 3600, t1 - 6 * 3600)
        b = a + rng.uniform(1.0, 4.0) * 3600
        if "max" in limits and (metric != "water_level_m" or rng.random() < 0.5):
            level = limits["max"] + max(abs(limits["max"]), 1.0) * rng.uniform(0.04, 0.25)
        else:
            level = limits["min"] - max(abs(limits["min"]), 1.0) * rng.uniform(0.04, 0.2)
        out.append((metric, a, b, level))
    return out


def _metrics(
    rng: random.Random,
    dev: DevicePlan,
    ts: float,
    hour: float,
    frac: float,
    drift_to: float,
    level0: float,
    events: list[tuple[str, float, float, float]],
) -> dict[str, float]:
    work = 7.5 <= hour <= 18.5
    if dev.kind == "foundation_pit":
        base = {
            "displacement_mm": 4
            + (drift_to - 4) * frac
            + 0.8 * math.sin(hour / 24 * 2 * math.pi)
            + rng.gauss(0, 0.4),
            "water_level_m": level0 + 0.3 * math.sin(frac * 9) + rng.gauss(0, 0.05),
        }
    elif dev.kind == "tower_crane":
        base = {
            "load_t": rng.uniform(0.5, 7.2) if work and rng.random() < 0.6 else rng.uniform(0, 0.3),
            "wind_speed_ms": max(
                0.0, 4 + 3 * math.sin(hour / 24 * 2 * math.pi - 1) + rng.gauss(0, 1.2)
            ),
        }
        if work and rng.random() < 0.003:  # an overload lift: one reading
            base["load_t"] = 8.0 * rng.uniform(1.03, 1.18)
    else:
        rush = math.exp(-((hour - 8.5) ** 2) / 2) + math.exp(-((hour - 18) ** 2) / 2)
        base = {
            "pm10_ugm3": 45 + 40 * rush + (25 if work else 0) + rng.gauss(0, 8),
            "noise_db": (63 if work else 49) + rng.gauss(0, 2.5),
        }
    values: dict[str, float] = {}
    for metric, v in base.items():
        limits = dev.thresholds.get(metric, {})
        overload = metric == "load_t" and v > 8.0
        if not overload:  # the background signal stays inside its limits with a margin
            if "max" in limits:
                v = min(v, limits["max"] - 0.07 * max(abs(limits["max"]), 1.0))
            if "min" in limits:
                v = max(v, limits["min"] + 0.07 * max(abs(limits["min"]), 1.0))
        for m, a, b, level in events:
            if m == metric and a <= ts <= b:
                v = level + rng.gauss(0, abs(level) * 0.01)
        values[metric] = _avoid_limit(round(v, 2), limits)
    return values


def _avoid_limit(v: float, limits: dict[str, float]) -> float:
    """A reading exactly on a limit is inside; never send one (equality is not what we test)."""
    for bound in limits.values():
        if v == round(bound, 2):
            return round(v + 0.01, 2)
    return v
