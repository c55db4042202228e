"""`sitewatch simulate SCENARIO`: register a seeded world on a running SiteWatch, publish a
simulated week (or whatever the scenario says) over MQTT as fast as the rate allows, and write
the run's ground truth next to it.

Run directory (``--out``):

* ``run.json``     what was run: scenario, seed, ids, simulated period, endpoints, publish stats
* ``truth.json``   the expected alerts (by identity and type) and attendance (``simulators.truth``)
* ``facts.json.gz`` every simulated fix, log and reading (what the truth was computed from)
* ``registry.json`` the projects (GeoJSON), engineers, filings and devices registered
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import logging
import secrets
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from shapely.geometry import mapping

from simulators import truth as truth_mod
from simulators.plans import SCENARIOS, Config, Scenario
from simulators.publish import Progress, Publisher, pace_and_publish
from simulators.registry import (
    ForeignFence,
    api_client,
    check,
    existing_projects,
    load_endpoints,
    post,
    wait_visible,
)
from simulators.scenario import build

log = logging.getLogger("sitewatch.simulate")

TRUTH_VERSION = 1
TRAINING_PRESENT_SHARE = 0.8  # min_minutes_present's default (CONTRACT §6.3)


def config_from_args(args: argparse.Namespace) -> Config:
    base = dict(SCENARIOS[args.scenario])
    cfg = Config(scenario=args.scenario, seed=args.seed, **base)
    rules = truth_mod.Rules.from_settings()
    cfg = replace(cfg, timezone=rules.timezone, allowed_lateness_s=rules.allowed_lateness_s)
    if args.engineers is not None:
        cfg.engineers = args.engineers
    if args.devices is not None:
        cfg.devices = args.devices
    if args.days is not None:
        cfg.days = args.days
    if args.fix_interval:
        lo, hi = (float(x) for x in args.fix_interval.split(","))
        cfg.fix_interval_s = (lo, hi)
    if args.device_interval is not None:
        cfg.device_interval_s = args.device_interval
    if args.devices_per_site is not None:
        cfg.devices_per_site = max(1, args.devices_per_site)
    if args.dead_devices is not None:
        cfg.dead_devices = args.dead_devices
    if args.start:
        day = dt.date.fromisoformat(args.start)
        cfg.start = dt.datetime.combine(day, dt.time(0), tzinfo=cfg.tz)
    if cfg.engineers < 1 or cfg.days < 1 or cfg.devices < 0:
        raise SystemExit("--engineers and --days must be at least 1, --devices at least 0")
    return cfg


def compute_truth(
    sc: Scenario,
    foreign: list[ForeignFence],
    rules: truth_mod.Rules,
    now: float | None = None,
) -> truth_mod.Truth:
    fences = [truth_mod.Fence(s.id, s.region_code, s.polygon) for s in sc.sites]
    fences += [truth_mod.Fence(i, r, g, a, b) for i, r, g, a, b in foreign if r]
    engineers = {
        e.id: truth_mod.Registered(
            e.registered_region,
            tuple((f.region_code, f.valid_from, f.valid_to) for f in e.filings),
            e.suspended_from,
        )
        for e in sc.engineers
    }
    sensors = {d.id: truth_mod.Sensor(d.interval_s, d.thresholds, d.site.id) for d in sc.devices}
    duties = [
        truth_mod.Duty(site, ids[0], tuple(ids), sc.required_days[site])
        for site, ids in sc.members.items()
        if sc.required_days.get(site)
    ]
    trainings = [
        truth_mod.TrainingPlace(
            t.id,
            t.place.polygon,
            t.starts_at.timestamp(),
            t.ends_at.timestamp(),
            TRAINING_PRESENT_SHARE * (t.ends_at - t.starts_at).total_seconds() / 60,
        )
        for t in sc.trainings
    ]
    truth = truth_mod.compute(
        fixes=sc.fixes,
        logs=sc.logs,
        readings=sc.readings,
        fences=fences,
        engineers=engineers,
        sensors=sensors,
        rules=rules,
        trailing_silences=sc.config.dead_devices > 0,
        duties=duties,
        trainings=trainings,
        now=now,
    )
    now_s = now if now is not None else time.time()
    truth.alerts["notice_overdue"] = truth_mod.notice_overdue(sc.notices, now_s)
    return truth


def register(api: Any, sc: Scenario) -> dict[str, str]:
    """Create the scenario's projects, engineers, filings and devices; returns the MQTT
    passwords by identity."""
    from geofence.coords import wgs84_to_gcj02  # the published GCJ-02 formula

    passwords: dict[str, str] = {}
    for s in sc.sites:
        ring = s.ring
        if s.register_crs == "gcj02":
            gcj = [wgs84_to_gcj02(x, y) for x, y in ring]
            ring = [(round(float(x), 7), round(float(y), 7)) for x, y in gcj]
        ids = sc.members.get(s.id, [])
        required = sc.required_days.get(s.id)
        feature = {
            "type": "Feature",
            "properties": {
                "id": s.id,
                "name": s.name,
                "region_code": s.region_code,
                "crs": s.register_crs,
                "engineer_ids": ids,
                **({"chief_engineer_id": ids[0]} if ids else {}),
                **({"required_days_per_month": required} if ids and required else {}),
            },
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
        }
        post(api, "/api/projects", feature, f"registering project {s.id}")

    def engineer(e: Any) -> tuple[str, str]:
        body: dict[str, Any] = {
            "id": e.id,
            "name": e.name,
            "registered_region": e.registered_region,
            "cert_status": "valid",
            "phone": f"139{zlib.crc32(e.id.encode()) % 10**8:08d}",
        }
        if e.sm2_public_key:
            body["sm2_public_key"] = e.sm2_public_key
        r = post(api, "/api/engineers", body, f"registering engineer {e.id}")
        for f in e.filings:
            post(api, "/api/filings", f.body(e.id), f"filing for {e.id}")
        if e.suspended_from is not None:
            change = {"cert_status": "suspended", "cert_status_from": e.suspended_from.isoformat()}
            check(api.patch(f"/api/engineers/{e.id}", json=change), f"suspending {e.id}")
        return e.id, r["mqtt_password"]

    def device(d: Any) -> tuple[str, str]:
        body = {
            "id": d.id,
            "project_id": d.site.id,
            "kind": d.kind,
            "report_interval_s": d.interval_s,
            "thresholds": d.thresholds,
            "hmac_key": d.hmac_key,
        }
        r = post(api, "/api/devices", body, f"registering device {d.id}")
        return d.id, r["mqtt_password"]

    with ThreadPoolExecutor(4) as pool:
        passwords.update(pool.map(engineer, sc.engineers))
        passwords.update(pool.map(device, sc.devices))
    for t in sc.trainings:  # after its attendees: only registered engineers are credited
        post(api, "/api/trainings", t.body(), f"registering training {t.id}")
    # the API may answer before it commits: publish only once every engineer is visible
    wait_visible(api, [f"/api/engineers/{e.id}" for e in sc.engineers])
    return passwords


def post_notices(api: Any, sc: Scenario, timeout_s: float = 300.0) -> None:
    """The scenario's notices through `POST /api/records` (MQTT takes none), after the
    messages; then, once the worker has opened them, close the ones to close."""
    for n in sc.notices:
        check(api.post("/api/records", data={"record": json.dumps(n.record())}), f"notice {n.id}")
    deadline = time.monotonic() + timeout_s
    for n in [n for n in sc.notices if n.closed]:
        while api.get(f"/api/notices/{n.id}").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"notice {n.id} was not opened within {timeout_s:.0f} s")
            time.sleep(1.0)
        check(api.post(f"/api/notices/{n.id}/close", json={"note": "复查合格"}), f"closing {n.id}")


def write_run_dir(
    out: Path,
    sc: Scenario,
    truth: truth_mod.Truth,
    rules: truth_mod.Rules,
    data_dir: Path,
    endpoints: dict[str, Any],
    foreign: list[ForeignFence],
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    tz = sc.config.tz
    checked = list(truth_mod.ALERT_TYPES)
    expected = {t: len(v) for t, v in truth.alerts.items()}
    run = {
        "version": TRUTH_VERSION,
        "run_id": sc.prefix,
        "scenario": sc.config.scenario,
        "seed": sc.config.seed,
        "config": {
            k: (v.isoformat() if isinstance(v, dt.datetime) else v)
            for k, v in asdict(sc.config).items()
        },
        "timezone": sc.config.timezone,
        "start": sc.start.isoformat(),
        "end": sc.end.isoformat(),
        "closing": dt.datetime.fromtimestamp(sc.closing_ts, tz).isoformat(),
        "window": {
            "from": sc.start.isoformat(),
            "to": dt.datetime.fromtimestamp(
                sc.closing_ts + 3600 + 2 * sc.config.device_interval_s, tz
            ).isoformat(),
        },
        # each device's last reading is a marker excursion: score waits for its alert
        "markers": {r.device_id: r.ts for r in sc.readings if r.marker},
        "dates": [
            (sc.start.date() + dt.timedelta(days=i)).isoformat() for i in range(sc.config.days + 1)
        ],
        "data_dir": str(data_dir.resolve()),
        "http": endpoints.get("http"),
        "engineers": [e.id for e in sc.engineers],
        "devices": [d.id for d in sc.devices],
        "projects": [s.id for s in sc.sites],
        "trainings": [t.id for t in sc.trainings],
        "notices": [n.id for n in sc.notices],
        "foreign_projects": sorted({f[0] for f in foreign}),
        "counts": {
            "messages": len(sc.messages),
            "fixes": len(sc.fixes),
            "logs": len(sc.logs),
            "readings": len(sc.readings),
            "duplicates_sent": sc.duplicates_sent,
        },
        "expected_alerts": expected,
        "injected": sc.injected,
    }
    truth_doc = {
        "version": TRUTH_VERSION,
        "run_id": sc.prefix,
        "rules": asdict(rules),
        "checked_rules": checked,
        "alerts": truth.alerts,
        "attendance": truth.attendance,
        "fixes": {
            "total": sum(len(v) for v in truth.fix_ids.values()),
            "by_engineer_date": truth.fixes_by_engineer_date,
            "ids": truth.fix_ids,
            "duplicates_sent": sc.duplicates_sent,
        },
        "borderline": truth.borderline,
        "trainings": truth.trainings,
        "days_without_log": truth.days_without_log,
        "open_notices": {
            s.id: sorted(n.id for n in sc.notices if not n.closed and n.log.project_id == s.id)
            for s in sc.sites
        },
    }
    registry = {
        "projects": {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"id": s.id, "name": s.name, "region_code": s.region_code},
                    "geometry": mapping(s.polygon),
                }
                for s in sc.sites
            ],
        },
        "engineers": [
            {
                "id": e.id,
                "role": e.role,
                "registered_region": e.registered_region,
                "primary": e.primary.id,
                "secondary": e.secondary.id if e.secondary else None,
                "visit": [e.visit[0], e.visit[1].id] if e.visit else None,
                "phone": e.phone,
                "crs": e.crs,
                "ts_format": e.ts_format,
                "signs": bool(e.sm2_public_key),
                "spoof_day": e.spoof_day,
                "filings": [f.body(e.id) for f in e.filings],
                "suspended_from": e.suspended_from.isoformat() if e.suspended_from else None,
                "stops_coming_from": (
                    e.stops_coming_from.isoformat() if e.stops_coming_from else None
                ),
                "training": e.training.id if e.training else None,
            }
            for e in sc.engineers
        ],
        "trainings": [t.body() for t in sc.trainings],
        "required_days_per_month": sc.required_days,
        "devices": [
            {
                "id": d.id,
                "project_id": d.site.id,
                "kind": d.kind,
                "report_interval_s": d.interval_s,
                "thresholds": d.thresholds,
                "outages": [[a, b] for a, b in d.outages],
                "dead_from": d.dead_from,
            }
            for d in sc.devices
        ],
    }
    facts = {
        "fixes": [asdict(f) for f in sc.fixes],
        "logs": [asdict(g) for g in sc.logs],
        "readings": [asdict(r) for r in sc.readings],
    }
    (out / "run.json").write_text(json.dumps(run, ensure_ascii=False, indent=2))
    (out / "truth.json").write_text(json.dumps(truth_doc, ensure_ascii=False, indent=1))
    (out / "registry.json").write_text(json.dumps(registry, ensure_ascii=False, indent=1))
    with gzip.open(out / "facts.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(facts, fh, ensure_ascii=False)
    return run


def run_simulate(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    rules = truth_mod.Rules.from_settings()
    endpoints, token = load_endpoints(args.data_dir)
    run_id = args.run_id or f"SIM{secrets.token_hex(3).upper()}"
    out = args.out or Path("runs") / run_id
    with api_client(endpoints, token) as api:
        foreign = existing_projects(api)
        t0 = time.monotonic()
        sc = build(cfg, run_id, foreign)
        truth = compute_truth(sc, foreign, rules)
        log.info(
            "scenario %s (seed %d): %d engineers, %d devices, %d sites, %d days from %s: "
            "%d messages, built in %.1f s",
            cfg.scenario,
            cfg.seed,
            len(sc.engineers),
            len(sc.devices),
            len(sc.sites),
            cfg.days,
            sc.start.date(),
            len(sc.messages),
            time.monotonic() - t0,
        )
        if truth.borderline:
            log.warning("borderline cases in the ground truth: %s", truth.borderline[:5])
        run = write_run_dir(out, sc, truth, rules, args.data_dir, endpoints, foreign)
        if args.dry_run:
            print(json.dumps({"run_dir": str(out), "expected_alerts": run["expected_alerts"]}))
            return 0
        t1 = time.monotonic()
        passwords = register(api, sc)
        run["register_s"] = round(time.monotonic() - t1, 2)
    per_identity = args.identity == "per-identity"
    progress = Progress(len(sc.messages), f"simulate {run_id}")
    tz = cfg.tz
    with Publisher(endpoints, credentials=passwords, per_identity=per_identity) as pub:
        stats = pace_and_publish(
            pub,
            sc.messages,
            len(sc.messages),
            rate=args.rate or None,
            speedup=args.speedup or None,
            progress=progress,
            note=lambda m: dt.datetime.fromtimestamp(m.ts, tz).strftime("%m-%d %H:%M"),
        )
    run["publish"] = {**stats.to_dict(), "identity": args.identity}
    with api_client(endpoints, token) as api:
        post_notices(api, sc)
    (out / "run.json").write_text(json.dumps(run, ensure_ascii=False, indent=2))
    summary = {
        "run_dir": str(out),
        "run_id": run_id,
        "messages": stats.messages,
        "publish_s": round(stats.wall_s, 1),
        "expected_alerts": run["expected_alerts"],
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from simulators.arguments import simulate_arguments

    p = argparse.ArgumentParser(prog="sitewatch simulate")
    simulate_arguments(p)
    return run_simulate(p.parse_args(argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
