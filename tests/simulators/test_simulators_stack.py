"""Simulators on the real stack: recorded tracks replayed as phones, and a seeded simulated
week scored against its independent ground truth (precision and recall 1.0 per rule, nothing
lost or counted twice)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import gpxpy
import pytest

from commands.main import main as sitewatch
from geofence.coords import wgs84_to_gcj02
from rules.chief_absence import closed_months
from stack.up import Stack
from tests.stack_client import StackClient, wait_until

pytestmark = pytest.mark.stack

DATA = Path(__file__).parent / "data"
TZ = ZoneInfo("Asia/Shanghai")
M_LAT = 110_574.0


def m_lon(lat: float) -> float:
    return 111_320.0 * math.cos(math.radians(lat))


def dist_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Flat distance in metres: plenty for points a few km apart."""
    return math.hypot((a[0] - b[0]) * m_lon(a[1]), (a[1] - b[1]) * M_LAT)


def gpx_points(name: str) -> list[tuple[float, float, float | None]]:
    g = gpxpy.parse((DATA / name).read_text())
    return [
        (p.longitude, p.latitude, p.time.timestamp() if p.time else None)
        for t in g.tracks
        for s in t.segments
        for p in s.points
    ]


def box_feature(pid: str, lon: float, lat: float, half_m: float, region: str) -> dict[str, Any]:
    dx, dy = half_m / m_lon(lat), half_m / M_LAT
    ring = [
        [lon - dx, lat - dy],
        [lon + dx, lat - dy],
        [lon + dx, lat + dy],
        [lon - dx, lat + dy],
        [lon - dx, lat - dy],
    ]
    return {
        "type": "Feature",
        "properties": {"id": pid, "name": f"replay {pid}", "region_code": region},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def track_of(sw: StackClient, engineer_id: str, dates: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with sw.api() as api:
        for day in sorted(dates):
            r = api.get(f"/api/engineers/{engineer_id}/track", params={"date": day})
            assert r.status_code == 200, r.text
            out += r.json()["features"]
    return out


def wait_track(
    sw: StackClient, engineer_id: str, dates: set[str], n: int, what: str
) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        features = track_of(sw, engineer_id, dates)
        return features if len(features) >= n else None

    return wait_until(check, timeout_s=180, what=what)  # type: ignore[no-any-return]


def local_dates(stamps: list[float]) -> set[str]:
    return {dt.datetime.fromtimestamp(t, TZ).date().isoformat() for t in stamps}


def expected_minutes(stamps: list[float], max_gap_s: float = 900.0) -> dict[str, float]:
    """Attendance minutes per local date when every fix is on site (CONTRACT section 4)."""
    by_day: dict[str, list[float]] = {}
    for t in sorted(stamps):
        by_day.setdefault(dt.datetime.fromtimestamp(t, TZ).date().isoformat(), []).append(t)
    return {
        day: round(
            sum(b - a for a, b in zip(ts, ts[1:], strict=False) if b - a <= max_gap_s) / 60, 2
        )
        for day, ts in by_day.items()
    }


def test_replay_real_gpx_walk_onto_a_site(
    sw: StackClient, running_stack: Stack, tmp_path: Path
) -> None:
    """gpxpy's 2-hour walk round Cerknica lake, moved onto a site in Huizhou: every point
    arrives, the track keeps its shape, and the attendance is the walk's."""
    tag = uuid.uuid4().hex[:6]
    pid, eid = f"RPL-P-{tag}", f"RPL-E-{tag}"
    base = (114.40 + int(tag[:2], 16) * 1e-3, 23.08)
    with sw.api() as api:
        r = api.post("/api/projects", json=box_feature(pid, *base, 4000, "441302"))
        assert r.status_code == 201, r.text
    out = tmp_path / "sent.json"
    rc = sitewatch(
        [
            "replay",
            str(DATA / "cerknicko-jezero.gpx"),
            "--data-dir",
            str(running_stack.options.data_dir),
            "--engineer",
            eid,
            "--region",
            "441302",
            "--translate-to",
            pid,
            "--acc",
            "8",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    sent = json.loads(out.read_text())
    assert sent["registered"] and sent["published"] == 296
    stamps = [m["ts"] for m in sent["messages"]]
    assert max(stamps) <= time.time() + 1  # never in the future
    dates = local_dates(stamps)
    features = wait_track(sw, eid, dates, 296, "the replayed walk in the track")
    assert len(features) == 296
    got = [tuple(f["geometry"]["coordinates"]) for f in features]
    orig = gpx_points("cerknicko-jezero.gpx")
    # shape kept: consecutive distances as recorded (to 1 %)
    for (a, b), (c, d) in zip(
        zip(orig, orig[1:], strict=False), zip(got, got[1:], strict=False), strict=True
    ):
        assert dist_m(c, d) == pytest.approx(dist_m(a[:2], b[:2]), rel=0.01, abs=0.05)
    # centred on the site
    lons, lats = [p[0] for p in got], [p[1] for p in got]
    centre = ((min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2)
    assert dist_m(centre, base) < 1.0
    # recorded spacing kept (re-timed to end now)
    recorded = [p[2] for p in orig]
    assert [round(t - stamps[0]) for t in stamps] == [round(t - recorded[0]) for t in recorded]  # type: ignore[operator]
    want = expected_minutes(stamps)

    def attendance() -> Any:
        with sw.api() as api:
            rows = api.get("/api/attendance", params={"engineer_id": eid}).json()
        got_rows = {r["date"]: r["minutes_on_site"] for r in rows if r["project_id"] == pid}
        return got_rows if got_rows == want else None

    wait_until(attendance, timeout_s=60, what=f"attendance {want}")


def test_replay_gcj02_csv_owntracks_rec_and_geojson(
    sw: StackClient, running_stack: Stack, tmp_path: Path
) -> None:
    """A car drive written as a GCJ-02 CSV (as a Chinese map app exports it) arrives in WGS-84
    within centimetres; an OwnTracks recorder file whose times are bogus goes out on the
    OwnTracks topic with synthesized times; a GeoJSON LineString with gaps in its coordTimes
    is interpolated."""
    tag = uuid.uuid4().hex[:6]
    data_dir = str(running_stack.options.data_dir)
    lon0, lat0 = 114.35 + int(tag[:2], 16) * 1e-3, 23.05
    # 1. GCJ-02 CSV with the recorded times
    drive = gpx_points("around-visnjan-with-car.gpx")
    first = drive[0]
    wgs = [
        (
            lon0 + (lon - first[0]) * m_lon(first[1]) / m_lon(lat0),
            lat0 + (lat - first[1]),
            ts,
        )
        for lon, lat, ts in drive
    ]
    csv_file = tmp_path / "drive-gcj02.csv"
    with csv_file.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "lat", "lng", "accuracy"])
        for lon, lat, ts in wgs:
            gx, gy = wgs84_to_gcj02(lon, lat)
            w.writerow(
                [dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(), f"{gy:.9f}", f"{gx:.9f}", 6]
            )  # type: ignore[arg-type]
    eid = f"RPL-G-{tag}"
    rc = sitewatch(
        ["replay", str(csv_file), "--data-dir", data_dir, "--engineer", eid]
        + ["--region", "441302", "--crs", "gcj02", "--keep-time"]
    )
    assert rc == 0
    dates = local_dates([p[2] for p in wgs])  # type: ignore[misc]
    features = wait_track(sw, eid, dates, len(wgs), "the GCJ-02 drive")
    assert len(features) == len(wgs) == 104
    for f, (lon, lat, ts) in zip(features, wgs, strict=True):
        assert dist_m(tuple(f["geometry"]["coordinates"]), (lon, lat)) < 0.05
        assert dt.datetime.fromisoformat(f["properties"]["ts"]).timestamp() == pytest.approx(ts)
    # 2. OwnTracks recorder file, every time the same bogus 1901 date
    walk = gpx_points("Mojstrovka.gpx")
    rec = tmp_path / "walk.rec"
    rec.write_text(
        "".join(
            "2010-12-14T06:17:04Z\towntracks/x/phone\t"
            + json.dumps(
                {"_type": "location", "tst": -2147483648, "lat": lat, "lon": lon, "acc": 5}
            )
            + "\n"
            for lon, lat, _ in walk
        )
    )
    eid2 = f"RPL-O-{tag}"
    out = tmp_path / "rec.json"
    rc = sitewatch(
        ["replay", str(rec), "--data-dir", data_dir, "--engineer", eid2, "--region", "441302"]
        + ["--translate-to", f"{lon0 + 0.05},{lat0}", "--out", str(out)]
    )
    assert rc == 0
    sent = json.loads(out.read_text())
    assert sent["topic"] == "owntracks" and sent["synthesized_times"] == 184
    assert sent["published"] == 184
    stamps = [m["ts"] for m in sent["messages"]]
    features = wait_track(sw, eid2, local_dates(stamps), 184, "the OwnTracks walk")
    assert {f["properties"]["source"] for f in features} == {"owntracks"}
    # 3. GeoJSON LineString, coordTimes with gaps (as togeojson writes a partly timed GPX)
    long_walk = gpx_points("korita-zbevnica.gpx")
    gj = tmp_path / "walk.geojson"
    gj.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {
                    "coordTimes": [
                        dt.datetime.fromtimestamp(t, dt.UTC).isoformat() if t else None
                        for _, _, t in long_walk
                    ]
                },
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[lon, lat] for lon, lat, _ in long_walk],
                },
            }
        )
    )
    eid3 = f"RPL-J-{tag}"
    out = tmp_path / "gj.json"
    rc = sitewatch(
        ["replay", str(gj), "--data-dir", data_dir, "--engineer", eid3, "--region", "441302"]
        + ["--translate-to", f"{lon0 - 0.05},{lat0}", "--rate", "2000", "--out", str(out)]
    )
    assert rc == 0
    sent = json.loads(out.read_text())
    assert sent["published"] == 871 and sent["synthesized_times"] == 871 - 513
    stamps = [m["ts"] for m in sent["messages"]]
    wait_track(sw, eid3, local_dates(stamps), 871, "the GeoJSON walk")


def _score(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "score.json").read_text())


def test_simulated_week_scores_perfectly(
    sw: StackClient, running_stack: Stack, tmp_path: Path, artifacts: Path
) -> None:
    """The proof (issue 8): 50 engineers and 20 devices for a simulated week, published at
    speed-up with per-identity credentials; the monitor's alerts match the ground truth with
    precision and recall 1.0 for every rule, attendance to the hundredth of a minute, and no
    fix lost or counted twice.

    One device per project: with several, the monitor's stream-time `device_offline` is
    judged against the project's newest reading, and devices of one project are on different
    partitions, so a speed-up of ~40,000 turns partition skew into false silences (see
    `test_several_devices_per_project` and docs/simulators.md)."""
    tag = uuid.uuid4().hex[:4].upper()
    run_dir = tmp_path / "week"
    # the week in the last closed month, so that `chief_absent` judges it whatever today is
    last_closed = closed_months(dt.datetime.now(dt.UTC), TZ, 3600.0)[-1]
    start = last_closed + dt.timedelta(days=10)
    t0 = time.monotonic()
    rc = sitewatch(
        ["simulate", "week", "--data-dir", str(running_stack.options.data_dir)]
        + ["--seed", "20261124", "--run-id", f"SW{tag}", "--devices-per-site", "1"]
        + ["--start", start.isoformat(), "--out", str(run_dir)]
    )
    assert rc == 0
    t_publish = time.monotonic() - t0
    run = json.loads((run_dir / "run.json").read_text())
    assert len(run["engineers"]) >= 50 and len(run["devices"]) >= 20
    assert run["config"]["days"] == 7
    rc = sitewatch(["score", str(run_dir), "--wait", "600"])
    elapsed = time.monotonic() - t0
    score = _score(run_dir)
    report = {
        "runtime_s": round(elapsed, 1),
        "simulate_s": round(t_publish, 1),
        "messages": run["counts"]["messages"],
        "publish": run["publish"],
        "score": score,
    }
    (artifacts / "simulators-week-score.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "score"}))
    assert score["wait"]["caught_up"], score["wait"]
    for kind, s in score["alerts"].items():
        assert s["checked"], kind
        assert s["expected"] > 0, f"no {kind} in the scenario"
        assert (s["precision"], s["recall"]) == (1.0, 1.0), (kind, s)
    assert score["fixes"]["lost"] == 0 and score["fixes"]["duplicated"] == 0, score["fixes"]
    assert score["fixes"]["unexpected"] == 0 and score["fixes"]["duplicates_sent"] > 0
    att = score["attendance"]
    assert att["missing_rows"] == att["extra_rows"] == 0, att
    assert att["rows_off_by_more_than_tolerance"] == att["present_mismatches"] == 0, att
    assert att["first_last_mismatches"] == 0, att
    # a training: those who stayed long enough credited, once; the one who left early not
    trainings = score["trainings"]
    assert trainings["expected"] > 0 and trainings["credited_twice"] == 0, trainings
    assert (trainings["precision"], trainings["recall"]) == (1.0, 1.0), trainings
    registry = json.loads((run_dir / "registry.json").read_text())
    invited = [e["id"] for e in registry["engineers"] if e["training"]]
    assert len(invited) > trainings["expected"], (invited, trainings)
    assert any(e["stops_coming_from"] for e in registry["engineers"])
    assert score["perfect"] and rc == 0


def test_the_dossier_of_a_simulated_quarter_matches_its_ground_truth(
    sw: StackClient, running_stack: Stack, tmp_path: Path, artifacts: Path
) -> None:
    """88 simulated days of 8 engineers: every project's dossier names exactly the days each
    engineer was on site there without a log and the notices left open (the truth computes
    them from the facts), and the rest of the run scores as the week does."""
    tag = uuid.uuid4().hex[:4].upper()
    run_dir = tmp_path / "quarter"
    rc = sitewatch(
        ["simulate", "quarter", "--data-dir", str(running_stack.options.data_dir)]
        + ["--seed", "20261206", "--run-id", f"SQ{tag}", "--devices-per-site", "1"]
        + ["--out", str(run_dir)]
    )
    assert rc == 0
    rc = sitewatch(["score", str(run_dir), "--wait", "600"])
    score = _score(run_dir)
    (artifacts / "simulators-quarter-score.json").write_text(json.dumps(score, indent=2))
    dossiers = score["dossiers"]
    assert dossiers["projects"] >= 3 and dossiers["days_expected"] > 0, dossiers
    assert dossiers["mismatched"] == 0, dossiers
    assert dossiers["days_in_dossiers"] == dossiers["days_expected"]
    # notices left open: named by the dossier of their project (half of them were closed)
    assert dossiers["open_notices_expected"] > 0
    assert dossiers["open_notices_in_dossiers"] == dossiers["open_notices_expected"]
    overdue = score["alerts"]["notice_overdue"]
    assert overdue["expected"] > 0 and (overdue["precision"], overdue["recall"]) == (1.0, 1.0)
    missing = score["alerts"]["missing_log"]
    assert missing["expected"] > 0 and (missing["precision"], missing["recall"]) == (1.0, 1.0)
    assert score["perfect"] and rc == 0, {k: v for k, v in score.items() if k != "alerts"}


def test_several_devices_per_project(
    sw: StackClient, running_stack: Stack, tmp_path: Path, artifacts: Path
) -> None:
    """Three devices per project: every rule but `device_offline` must still be exact, and no
    silence may be missed. False silences from partition skew under speed-up (the project's
    stream time moves on with one device while another's readings wait on another partition)
    are a known limit of the monitor: reported as an expected failure while they happen."""
    tag = uuid.uuid4().hex[:4].upper()
    run_dir = tmp_path / "crowded"
    rc = sitewatch(
        ["simulate", "smoke", "--data-dir", str(running_stack.options.data_dir)]
        + ["--seed", "7", "--run-id", f"SC{tag}", "--devices", "9", "--devices-per-site", "3"]
        + ["--out", str(run_dir)]
    )
    assert rc == 0
    sitewatch(["score", str(run_dir), "--wait", "300"])
    score = _score(run_dir)
    (artifacts / "simulators-crowded-score.json").write_text(json.dumps(score, indent=2))
    assert score["wait"]["caught_up"], score["wait"]
    assert score["attendance"]["missing_rows"] == 0, _missing_rows_explained(sw, score)
    for kind, s in score["alerts"].items():
        if kind != "device_offline":
            assert (s["precision"], s["recall"]) == (1.0, 1.0), (kind, s)
    assert score["fixes"]["lost"] == score["fixes"]["duplicated"] == 0
    off = score["alerts"]["device_offline"]
    assert off["recall"] == 1.0, off
    if off["precision"] < 1.0:
        pytest.xfail(
            f"device_offline precision {off['precision']} with 3 devices per project "
            f"({off['false_positives']} false silences): stream time per project vs. "
            "partition skew under speed-up"
        )


def _missing_rows_explained(sw: StackClient, score: dict[str, Any]) -> dict[str, Any]:
    """The attendance rows the truth expects and the API lacks, with that engineer's stored
    fixes of the day (their project_ids) and the project's row, to tell a fence the worker
    did not know yet from a fix the truth placed differently."""
    out: dict[str, Any] = {"attendance": score["attendance"]}
    for key in score["attendance"]["examples"]["missing"][:2]:
        engineer_id, project_id, day = key
        out[f"{engineer_id} {project_id} {day}"] = {
            "fixes": sw.sql(
                "SELECT msg_id, ts, received_at, ST_AsText(geom), acc_m, project_ids FROM fixes "
                "WHERE engineer_id = %s AND local_date = %s ORDER BY ts",
                engineer_id,
                day,
            ),
            "project": sw.sql(
                "SELECT id, buffer_m, ST_AsText(geom), created_at FROM projects WHERE id = %s",
                project_id,
            ),
            "fence_changes": sw.sql(
                "SELECT id, kind, at FROM change_log WHERE kind IN ('projects', 'regions') "
                "ORDER BY id DESC LIMIT 20"
            ),
        }
    return out
