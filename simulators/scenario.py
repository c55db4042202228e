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

import datetime as dt
import random
from collections.abc import Sequence

from shapely.geometry import Polygon
from shapely.strtree import STRtree

from gm.algorithms import generate_sm2_keypair
from simulators import world
from simulators.device_week import _device_week
from simulators.engineer_week import _engineer_week
from simulators.plans import (
    Config,
    DevicePlan,
    EngineerPlan,
    Filing,
    NoticePlan,
    Scenario,
    TrainingPlan,
    role_counts,
)
from simulators.world import PLACE, Site


def build(
    config: Config,
    prefix: str,
    foreign: Sequence[tuple[str, str, Polygon, float, float]] | None = None,
    now: dt.datetime | None = None,
) -> Scenario:
    """Generate a scenario. ``foreign``: (id, region_code, polygon, valid_from, valid_to) of
    the boundaries of projects the monitor already has (a revised project's earlier ones
    too); sites are drawn away from all of them."""
    rng = random.Random(config.seed)
    start = config.start_local(now)
    end = start + dt.timedelta(days=config.days)
    closing_ts = end.timestamp() + config.allowed_lateness_s + 600
    foreign = foreign or []
    foreign_polys = [f[2] for f in foreign]

    roles = role_counts(config.engineers, config.violations)
    sites = _draw_sites(rng, prefix, config, roles, foreign_polys)
    by_city: dict[str, list[Site]] = {}
    for s in sites:
        by_city.setdefault(s.place.city, []).append(s)
    fences = [s.polygon for s in sites] + foreign_polys

    engineers = _plan_engineers(rng, config, prefix, roles, sites, by_city, fences, start)
    devices = _plan_devices(rng, config, prefix, sites, start, end)

    sc = Scenario(config, prefix, start, end, closing_ts, sites, engineers, devices, [], [], [], [])
    # their own generators, so the draws above and below stay as they were
    sc.members, sc.required_days = _duties(random.Random(config.seed + 3), config, engineers, start)
    sc.trainings = _plan_trainings(
        random.Random(config.seed + 2), config, prefix, engineers, fences, start
    )
    fences = fences + [t.place.polygon for t in sc.trainings]
    tree = STRtree(fences)
    seq = [0]

    def next_seq() -> int:
        seq[0] += 1
        return seq[0]

    for eng in engineers:
        _engineer_week(rng, sc, eng, tree, fences, next_seq)
    for dev in devices:
        _device_week(rng, sc, dev, next_seq)
    if config.violations and sc.logs:  # a few notices, half of them closed (all overdue)
        unsigned = {e.id for e in engineers if not e.sm2_public_key}  # posted by the admin
        logs = [g for g in sc.logs if g.engineer_id in unsigned]
        drawn = random.Random(config.seed + 4).sample(logs, min(len(logs), 4))
        sc.notices = [NoticePlan(log, k % 2 == 0) for k, log in enumerate(drawn)]
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
    # one certificate suspended from the third day (a past day: a change is dated today at
    # the latest); its own generator, so the other draws stay as they were
    third = first + dt.timedelta(days=2)
    if config.violations and config.days >= 3 and third <= dt.datetime.now(config.tz).date():
        random.Random(config.seed + 1).choice(plans).suspended_from = third
    # a few phones sign with SM2 (signing costs ~7 ms: keep them few)
    for p in [p for p in plans if p.phone == "checkin"][: max(1, config.engineers // 50)]:
        p.sm2_private_key, p.sm2_public_key = generate_sm2_keypair()
    return plans


REQUIRED_DAYS_PER_MONTH = 3  # every site's chief (chief_absent)
TRAINING_START = dt.time(9, 30)
TRAINING_LENGTH = dt.timedelta(minutes=150)


def _duties(
    rng: random.Random, config: Config, plans: list[EngineerPlan], start: dt.datetime
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each site's engineers (the first is its chief) and the chief's required days a month;
    with violations, one chief of a site with others on it stops coming after the first day."""
    members: dict[str, list[str]] = {}
    for e in plans:
        members.setdefault(e.primary.id, []).append(e.id)
        if e.secondary is not None:
            members.setdefault(e.secondary.id, []).append(e.id)
    required = {site: REQUIRED_DAYS_PER_MONTH for site in members}
    by_id = {p.id: p for p in plans}
    shared = sorted(
        site
        for site, ids in members.items()
        if len(ids) >= 2 and by_id[ids[0]].suspended_from is None
    )
    if config.violations and config.days >= 3 and shared:
        chief = by_id[members[rng.choice(shared)][0]]
        chief.stops_coming_from = start.date() + dt.timedelta(days=1)
    return members, required


def _plan_trainings(
    rng: random.Random,
    config: Config,
    prefix: str,
    plans: list[EngineerPlan],
    fences: list[Polygon],
    start: dt.datetime,
) -> list[TrainingPlan]:
    """One morning's offline training in Futian for up to four engineers who work in
    Shenzhen: all but the last stay to its end, the last leaves after 40-60 minutes."""
    day = _weekday_index(rng, start, config.days)
    invited = [
        p
        for p in plans
        if p.role == "local_sz"
        and p.spoof_day != day
        and p.stops_coming_from is None
        and (p.visit is None or p.visit[0] != day)
        and p.primary.place.city == "440300"
    ]
    if len(invited) < 2:
        return []
    invited = rng.sample(invited, min(4, len(invited)))
    drawn = world.draw_sites(rng, prefix, ["futian"], fences)[0]
    place = Site(f"{prefix}-T1", "继续教育培训中心", drawn.place, drawn.ring)
    starts = dt.datetime.combine(start.date() + dt.timedelta(days=day), TRAINING_START, config.tz)
    training = TrainingPlan(place.id, place, day, starts, starts + TRAINING_LENGTH, 3.0)
    for k, p in enumerate(invited):
        whole = TRAINING_LENGTH.total_seconds() + 600
        training.stays_s[p.id] = whole if k < len(invited) - 1 else rng.uniform(40, 60) * 60
        p.training = training
    return [training]


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
