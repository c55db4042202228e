"""`sitewatch score RUN_DIR`: what the running monitor reported for a simulated run, compared
with the run's ground truth.

Reads only the public API (CONTRACT section 2): ``GET /api/alerts``, ``GET /api/attendance``
and ``GET /api/engineers/{id}/track`` for every engineer and simulated day. Alerts are matched
by identity (CONTRACT section 4):

========================  ===================================================================
cross_region_unfiled      engineer, project, local date of the alert's event time
practice_while_suspended  engineer, project, local date of the alert's event time
impossible_travel         engineer, event time of the second fix of the pair (to the second)
sensor_threshold          device, event time of the first reading outside the limits
missing_log               engineer, project, ``details.date`` (else the local date just
                          before the alert's event time, the end of the day)
device_offline            device, event time within the silence (first to next reading)
chief_absent              project, ``details.month``
notice_overdue            ``details.notice_id``
========================  ===================================================================

``chief_absent`` and ``notice_overdue`` are scored whatever their event time (the last second of its month, which can
lie after the window). Trainings: the engineers ``GET /api/trainings/{id}`` lists as credited
against those the truth expects, and no engineer credited twice.

Only alerts of the run's engineers and devices whose event time lies in the run's window
(start of the simulated period to one hour after its closing records) are scored; others are
counted as ``outside_window`` (e.g. a wall-clock ``device_offline`` long after the run).
Precision is 1.0 when nothing was reported, recall 1.0 when nothing was expected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from simulators.registry import api_client, check, load_endpoints
from simulators.score_registry import (
    fetch_dossiers,
    fetch_trainings,
    prf,
    score_dossiers,
    score_trainings,
)
from simulators.truth import ALERT_TYPES

ATTENDANCE_TOLERANCE_MIN = 0.02  # the API rounds minutes to 2 decimals


# --- observing the monitor --------------------------------------------------------------------


def fetch_alerts(api: httpx.Client, run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every alert of the run's engineers and devices."""
    since = run["window"]["from"]
    r = check(api.get("/api/alerts", params={"since": since, "limit": 10_000}), "listing alerts")
    if len(r) < 10_000:
        mine = set(run["engineers"]) | set(run["devices"])
        return [a for a in r if a.get("engineer_id") in mine or a.get("device_id") in mine]

    def one(kind_id: tuple[str, str]) -> list[dict[str, Any]]:
        kind, ident = kind_id
        return check(
            api.get("/api/alerts", params={kind: ident, "since": since, "limit": 10_000}),
            f"alerts of {ident}",
        )

    keys = [("engineer_id", e) for e in run["engineers"]] + [
        ("device_id", d) for d in run["devices"]
    ]
    with ThreadPoolExecutor(4) as pool:
        return [a for chunk in pool.map(one, keys) for a in chunk]


def fetch_attendance(api: httpx.Client, run: dict[str, Any]) -> list[dict[str, Any]]:
    def one(engineer_id: str) -> list[dict[str, Any]]:
        return check(
            api.get("/api/attendance", params={"engineer_id": engineer_id}),
            f"attendance of {engineer_id}",
        )

    with ThreadPoolExecutor(4) as pool:
        return [row for rows in pool.map(one, run["engineers"]) for row in rows]


def fetch_tracks(
    api: httpx.Client, engineers: Iterable[str], dates: Iterable[str]
) -> dict[str, list[str]]:
    """msg_ids of every accepted fix per engineer over the given local dates (repeats kept)."""
    dates = list(dates)

    def one(engineer_id: str) -> tuple[str, list[str]]:
        ids: list[str] = []
        for day in dates:
            fc = check(
                api.get(f"/api/engineers/{engineer_id}/track", params={"date": day}),
                f"track of {engineer_id} on {day}",
            )
            ids += [f["properties"]["msg_id"] for f in fc.get("features", [])]
        return engineer_id, ids

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, engineers))


def wait_for_monitor(
    api: httpx.Client,
    run: dict[str, Any],
    truth: dict[str, Any],
    *,
    timeout_s: float,
    settle_s: float,
    log: Any = None,
) -> dict[str, Any]:
    """Poll until every engineer's last record (its closing fix) is visible, every device's
    marker excursion has its alert, and the run's alerts have not changed for ``settle_s``;
    returns how long it took and whether it got there. Records of one engineer or device are
    processed in order, so its last one being in means all of them are."""
    t0 = time.monotonic()
    last_day = run["dates"][-1]
    expected_last = {
        e: truth["fixes"]["by_engineer_date"].get(e, {}).get(last_day, 0) for e in run["engineers"]
    }
    pending = {e for e, n in expected_last.items() if n}
    previous: Any = None
    stable_since = time.monotonic()
    while True:
        if pending:
            seen = fetch_tracks(api, sorted(pending), [last_day])
            pending = {e for e, ids in seen.items() if len(set(ids)) < expected_last[e]}
        alerts = fetch_alerts(api, run)
        markers = {
            (a.get("device_id"), round(_ts(a["ts"])))
            for a in alerts
            if a["type"] == "sensor_threshold"
        }
        devices_pending = [
            d for d, ts in run.get("markers", {}).items() if (d, round(ts)) not in markers
        ]
        # judged by timers once the data is in: wait for as many as expected
        credited = fetch_trainings(api, run)
        timers_pending = [
            t
            for t, ids in truth.get("trainings", {}).items()
            if len(credited.get(t, [])) < len(ids)
        ]
        for timed in ("chief_absent", "notice_overdue"):
            if sum(a["type"] == timed for a in alerts) < len(truth["alerts"].get(timed, [])):
                timers_pending.append(timed)
        snapshot = sorted((a["id"], a.get("status")) for a in alerts)
        snapshot += sorted((t, tuple(ids)) for t, ids in credited.items())
        if snapshot != previous:
            previous = snapshot
            stable_since = time.monotonic()
        waited = time.monotonic() - t0
        settled = time.monotonic() - stable_since >= settle_s
        if not pending and not devices_pending and not timers_pending and settled:
            return {"waited_s": round(waited, 1), "caught_up": True}
        if waited > timeout_s:
            return {
                "waited_s": round(waited, 1),
                "caught_up": False,
                "engineers_pending": sorted(pending)[:10],
                "devices_pending": devices_pending[:10],
                "timers_pending": timers_pending,
            }
        if log is not None:
            log(
                f"waiting for the monitor: last records of {len(pending)} engineers and "
                f"{len(devices_pending)} devices pending, {len(timers_pending)} trainings or "
                f"monthly judgements, {len(alerts)} alerts so far"
            )
        time.sleep(3.0)


# --- matching ---------------------------------------------------------------------------------


def _ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def alert_key(a: dict[str, Any], tz: ZoneInfo) -> tuple[Any, ...]:
    t = a["type"]
    ts = _ts(a["ts"])
    if t in ("cross_region_unfiled", "practice_while_suspended"):
        return (
            a.get("engineer_id"),
            a.get("project_id"),
            dt.datetime.fromtimestamp(ts, tz).date().isoformat(),
        )
    if t == "impossible_travel":
        return (a.get("engineer_id"), round(ts))
    if t == "sensor_threshold":
        return (a.get("device_id"), round(ts))
    if t == "chief_absent":
        return (a.get("project_id"), (a.get("details") or {}).get("month"))
    if t == "notice_overdue":
        return ((a.get("details") or {}).get("notice_id"),)
    if t == "missing_log":
        day = (a.get("details") or {}).get("date") or (
            dt.datetime.fromtimestamp(ts - 1, tz).date().isoformat()
        )
        return (a.get("engineer_id"), a.get("project_id"), day)
    return (a.get("device_id"), round(ts))


def expected_key(t: str, e: dict[str, Any]) -> tuple[Any, ...]:
    if t in ("cross_region_unfiled", "missing_log", "practice_while_suspended"):
        return (e["engineer_id"], e["project_id"], e["date"])
    if t == "impossible_travel":
        return (e["engineer_id"], round(e["ts"]))
    if t == "sensor_threshold":
        return (e["device_id"], round(e["ts"]))
    if t == "chief_absent":
        return (e["project_id"], e["month"])
    if t == "notice_overdue":
        return (e["notice_id"],)
    return (e["device_id"], round(e["from_ts"]))


def score_alerts(
    truth: dict[str, Any], reported: list[dict[str, Any]], run: dict[str, Any]
) -> dict[str, Any]:
    tz = ZoneInfo(run["timezone"])
    lo, hi = _ts(run["window"]["from"]), _ts(run["window"]["to"])

    def scored(a: dict[str, Any]) -> bool:
        return a["type"] in ("chief_absent", "notice_overdue") or lo <= _ts(a["ts"]) <= hi

    inside = [a for a in reported if scored(a)]
    outside = [a for a in reported if not scored(a)]
    out: dict[str, Any] = {}
    for t in ALERT_TYPES:
        exp = truth["alerts"].get(t, [])
        rep = [a for a in inside if a["type"] == t]
        if t == "device_offline":
            result, fps, fns = _match_silences(exp, rep)
        else:
            want = Counter(expected_key(t, e) for e in exp)
            got = Counter(alert_key(a, tz) for a in rep)
            tp = sum((want & got).values())
            fps = [a for a in rep if got[alert_key(a, tz)] > want.get(alert_key(a, tz), 0)]
            fns = [e for e in exp if want[expected_key(t, e)] > got.get(expected_key(t, e), 0)]
            result = prf(tp, sum((got - want).values()), sum((want - got).values()))
        result["checked"] = t in truth.get("checked_rules", ALERT_TYPES)
        result["examples"] = {
            "false_positives": [_brief(a) for a in fps[:5]],
            "false_negatives": fns[:5],
        }
        out[t] = result
    out["_outside_window"] = Counter(a["type"] for a in outside)
    return out


def _match_silences(
    exp: list[dict[str, Any]], rep: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    by_dev: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in exp:
        by_dev[e["device_id"]].append(e)
    used: set[int] = set()
    fps = []
    for a in sorted(rep, key=lambda a: a["ts"]):
        ts = _ts(a["ts"])
        hit = None
        for e in by_dev.get(a.get("device_id") or "", []):
            to = e["to_ts"] if e["to_ts"] is not None else float("inf")
            if id(e) not in used and e["from_ts"] - 1 <= ts <= to + 1:
                hit = e
                break
        if hit is None:
            fps.append(a)
        else:
            used.add(id(hit))
    fns = [e for e in exp if id(e) not in used]
    tp = len(exp) - len(fns)
    return prf(tp, len(fps), len(fns)), fps, fns


def _brief(a: dict[str, Any]) -> dict[str, Any]:
    return {k: a.get(k) for k in ("id", "type", "engineer_id", "device_id", "project_id", "ts")}


def score_attendance(truth: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    want = {(r["engineer_id"], r["project_id"], r["date"]): r for r in truth["attendance"]}
    got = {(r["engineer_id"], r["project_id"], r["date"]): r for r in rows}
    errors = []
    for k in want.keys() & got.keys():
        w, g = want[k], got[k]
        errors.append(
            {
                "key": list(k),
                "minutes_error": round(abs(float(g["minutes_on_site"]) - w["minutes_on_site"]), 3),
                "first_in_error_s": abs(_ts(g["first_in"]) - _ts(w["first_in"])),
                "last_out_error_s": abs(_ts(g["last_out"]) - _ts(w["last_out"])),
                "present_differs": bool(g["present"]) != bool(w["present"]),
            }
        )
    minutes = [e["minutes_error"] for e in errors]
    return {
        "expected_rows": len(want),
        "reported_rows": len(got),
        "missing_rows": len(want.keys() - got.keys()),
        "extra_rows": len(got.keys() - want.keys()),
        "minutes_error_mean": round(sum(minutes) / len(minutes), 4) if minutes else 0.0,
        "minutes_error_max": max(minutes, default=0.0),
        "minutes_total_expected": round(sum(r["minutes_on_site"] for r in want.values()), 2),
        "minutes_total_reported": round(sum(float(r["minutes_on_site"]) for r in got.values()), 2),
        "rows_off_by_more_than_tolerance": sum(m > ATTENDANCE_TOLERANCE_MIN for m in minutes),
        "first_last_mismatches": sum(
            e["first_in_error_s"] > 0.5 or e["last_out_error_s"] > 0.5 for e in errors
        ),
        "present_mismatches": sum(e["present_differs"] for e in errors),
        "examples": {
            "missing": [list(k) for k in sorted(want.keys() - got.keys())[:5]],
            "extra": [list(k) for k in sorted(got.keys() - want.keys())[:5]],
            "worst": sorted(errors, key=lambda e: -e["minutes_error"])[:3],
        },
    }


def score_fixes(truth: dict[str, Any], seen: dict[str, list[str]]) -> dict[str, Any]:
    lost = duplicated = unexpected = 0
    examples: dict[str, list[str]] = {"lost": [], "duplicated": [], "unexpected": []}
    for engineer_id, expected_ids in truth["fixes"]["ids"].items():
        got = Counter(seen.get(engineer_id, []))
        want = set(expected_ids)
        missing = want - got.keys()
        extra = got.keys() - want
        dup = [m for m, n in got.items() if n > 1]
        lost += len(missing)
        unexpected += len(extra)
        duplicated += sum(got[m] - 1 for m in dup)
        examples["lost"] += sorted(missing)[:3]
        examples["duplicated"] += dup[:3]
        examples["unexpected"] += sorted(extra)[:3]
    return {
        "expected": truth["fixes"]["total"],
        "seen": sum(len(v) for v in seen.values()),
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": unexpected,
        "duplicates_sent": truth["fixes"].get("duplicates_sent", 0),
        "examples": {k: v[:5] for k, v in examples.items()},
    }


def score_run(
    run_dir: Path,
    data_dir: Path | None = None,
    *,
    wait_s: float = 120.0,
    settle_s: float = 8.0,
    log: Any = None,
) -> dict[str, Any]:
    run = json.loads((run_dir / "run.json").read_text())
    truth = json.loads((run_dir / "truth.json").read_text())
    endpoints, token = load_endpoints(data_dir or Path(run["data_dir"]))
    t0 = time.monotonic()
    with api_client(endpoints, token) as api:
        waited = (
            wait_for_monitor(api, run, truth, timeout_s=wait_s, settle_s=settle_s, log=log)
            if wait_s > 0
            else {"waited_s": 0.0, "caught_up": None}
        )
        alerts = fetch_alerts(api, run)
        attendance = fetch_attendance(api, run)
        tracks = fetch_tracks(api, run["engineers"], run["dates"])
        credited = fetch_trainings(api, run)
        dossiers = fetch_dossiers(api, run)
    alert_scores = score_alerts(truth, alerts, run)
    outside = alert_scores.pop("_outside_window")
    result = {
        "run_id": run["run_id"],
        "scenario": run["scenario"],
        "seed": run["seed"],
        "scored_at": dt.datetime.now(dt.UTC).isoformat(),
        "wait": waited,
        "score_s": round(time.monotonic() - t0, 1),
        "alerts": alert_scores,
        "alerts_outside_window": dict(outside),
        "attendance": score_attendance(truth, attendance),
        "fixes": score_fixes(truth, tracks),
        "trainings": score_trainings(truth, credited),
        "dossiers": score_dossiers(truth, dossiers),
    }
    checked = [t for t, s in alert_scores.items() if s["checked"]]
    result["perfect"] = (
        all(
            alert_scores[t]["precision"] == 1.0 and alert_scores[t]["recall"] == 1.0
            for t in checked
        )
        and result["trainings"]["precision"] == result["trainings"]["recall"] == 1.0
        and result["trainings"]["credited_twice"] == 0
        and result["dossiers"]["mismatched"] == 0
        and result["fixes"]["lost"] == 0
        and result["fixes"]["duplicated"] == 0
        and result["attendance"]["missing_rows"] == 0
        and result["attendance"]["extra_rows"] == 0
        and result["attendance"]["rows_off_by_more_than_tolerance"] == 0
    )
    (run_dir / "score.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return result


def table(result: dict[str, Any]) -> str:
    lines = [
        f"run {result['run_id']} (scenario {result['scenario']}, seed {result['seed']})",
        "",
        f"{'alert type':<22} {'expected':>8} {'reported':>8} {'TP':>5} {'FP':>5} {'FN':>5} "
        f"{'precision':>9} {'recall':>7}",
    ]
    for t, s in result["alerts"].items():
        mark = "" if s["checked"] else "  (not checked)"
        lines.append(
            f"{t:<22} {s['expected']:>8} {s['reported']:>8} {s['true_positives']:>5} "
            f"{s['false_positives']:>5} {s['false_negatives']:>5} {s['precision']:>9.3f} "
            f"{s['recall']:>7.3f}{mark}"
        )
    a = result["attendance"]
    f = result["fixes"]
    tr = result["trainings"]
    lines += [
        f"{'trainings (credits)':<22} {tr['expected']:>8} {tr['reported']:>8} "
        f"{tr['true_positives']:>5} {tr['false_positives']:>5} {tr['false_negatives']:>5} "
        f"{tr['precision']:>9.3f} {tr['recall']:>7.3f}  ({tr['credited_twice']} credited twice)",
        "",
        f"attendance: {a['expected_rows']} rows expected, {a['reported_rows']} reported, "
        f"{a['missing_rows']} missing, {a['extra_rows']} extra; minutes error mean "
        f"{a['minutes_error_mean']} max {a['minutes_error_max']}; present mismatches "
        f"{a['present_mismatches']}",
        f"fixes: {f['expected']} expected, {f['seen']} seen, {f['lost']} lost, "
        f"{f['duplicated']} duplicated, {f['unexpected']} unexpected "
        f"({f['duplicates_sent']} re-sent duplicates were published)",
    ]
    if result["alerts_outside_window"]:
        lines.append(
            f"alerts outside the run's window (not scored): {result['alerts_outside_window']}"
        )
    lines.append(f"perfect: {result['perfect']}")
    return "\n".join(lines)


def run_score(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = score_run(args.run_dir, args.data_dir, wait_s=args.wait, settle_s=args.settle, log=log)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print(table(result))
        print(f"written {args.run_dir / 'score.json'}")
    return 0 if result["perfect"] else 1


def main(argv: list[str] | None = None) -> int:
    from simulators.arguments import score_arguments

    p = argparse.ArgumentParser(prog="sitewatch score")
    score_arguments(p)
    return run_score(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
