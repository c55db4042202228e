"""Reading recorded tracks (real GPX files from gpxpy's test data, and the other formats
written from them), filling times, translating and re-timing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simulators import tracks
from simulators.replay import build_messages
from simulators.world import haversine_m

DATA = Path(__file__).parent / "data"


def test_real_gpx_files() -> None:
    lake = tracks.read_track(DATA / "cerknicko-jezero.gpx")
    assert len(lake.points) == 296 and all(p.ts is not None for p in lake.points)
    assert lake.points[-1].ts - lake.points[0].ts == pytest.approx(7190, abs=1)  # type: ignore[operator]
    car = tracks.read_track(DATA / "around-visnjan-with-car.gpx")
    assert len(car.points) == 104
    empty_segment = tracks.read_track(DATA / "track-with-empty-segment.gpx")
    assert len(empty_segment.points) == 9


def test_bogus_and_missing_times_are_synthesized_or_interpolated() -> None:
    mojstrovka = tracks.read_track(DATA / "Mojstrovka.gpx")  # every point at the same 1901 time
    pts = tracks.fill_times(mojstrovka, tracks.valid_points(mojstrovka))
    assert mojstrovka.synthesized_times == 184
    stamps = [p.ts for p in pts]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    korita = tracks.read_track(DATA / "korita-zbevnica.gpx")  # 358 of 871 without a time
    pts = tracks.fill_times(korita, tracks.valid_points(korita))
    assert korita.synthesized_times == 871 - 513
    assert all(p.ts is not None for p in pts)
    # interpolated times follow distance: implied speeds stay walking-like
    speeds = [
        haversine_m(a.lon, a.lat, b.lon, b.lat) / max(b.ts - a.ts, 1e-9)  # type: ignore[operator]
        for a, b in zip(pts, pts[1:], strict=False)
        if b.ts > a.ts  # type: ignore[operator]
    ]
    assert sorted(speeds)[len(speeds) // 2] < 3.0


def _points() -> list[tracks.TrackPoint]:
    t = tracks.read_track(DATA / "around-visnjan-with-car.gpx")
    return t.points


def test_csv_owntracks_geojson_readers_agree_with_gpx(tmp_path: Path) -> None:
    pts = _points()
    csv_file = tmp_path / "t.csv"
    csv_file.write_text(
        "Time;Latitude;Longitude;Accuracy\n"
        + "".join(f"{int(p.ts * 1000)};{p.lat};{p.lon};7.5\n" for p in pts)  # type: ignore[operator]
    )
    rec = tmp_path / "t.rec"
    rec.write_text(
        "".join(
            "2020-12-18T06:00:00Z\towntracks/u/phone\t"
            + json.dumps(
                {"_type": "location", "tst": int(p.ts), "lat": p.lat, "lon": p.lon, "acc": 9}
            )  # type: ignore[arg-type]
            + "\n"
            for p in pts
        )
        + '2020-12-18T06:30:00Z\towntracks/u/phone\t{"_type":"lwt","tst":1}\n'
    )
    gj = tmp_path / "t.geojson"
    gj.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {"coordTimes": [f"{p.ts}" for p in pts]},
                "geometry": {"type": "LineString", "coordinates": [[p.lon, p.lat] for p in pts]},
            }
        )
    )
    for path, fmt in ((csv_file, "csv"), (rec, "owntracks"), (gj, "geojson")):
        t = tracks.read_track(path)
        assert t.fmt == fmt
        assert [(round(p.lon, 9), round(p.lat, 9)) for p in t.points] == [
            (round(p.lon, 9), round(p.lat, 9)) for p in pts
        ]
        assert [int(p.ts) for p in t.points] == [int(p.ts) for p in pts]  # type: ignore[arg-type]
    assert tracks.read_track(rec).skipped == {"_type lwt": 1}
    assert tracks.read_track(csv_file).points[0].acc == 7.5


def test_translate_keeps_shape_and_size() -> None:
    pts = _points()
    moved = tracks.translate(pts, 113.93, 22.53)
    assert tracks.centre(moved) == pytest.approx((113.93, 22.53), abs=1e-9)
    for (a, b), (c, d) in zip(
        zip(pts, pts[1:], strict=False), zip(moved, moved[1:], strict=False), strict=True
    ):
        d0 = haversine_m(a.lon, a.lat, b.lon, b.lat)
        d1 = haversine_m(c.lon, c.lat, d.lon, d.lat)
        assert d1 == pytest.approx(d0, rel=0.01, abs=0.05)


def test_gcj02_input_is_converted_to_wgs84() -> None:
    from geofence.coords import wgs84_to_gcj02

    wgs = [tracks.TrackPoint(113.93 + i * 1e-4, 22.53, float(i)) for i in range(5)]
    gcj = [tracks.TrackPoint(*map(float, wgs84_to_gcj02(p.lon, p.lat)), p.ts) for p in wgs]
    back = tracks.to_wgs84(gcj, "gcj02")
    for a, b in zip(wgs, back, strict=True):
        assert haversine_m(a.lon, a.lat, b.lon, b.lat) < 0.01


def test_replay_offset_never_puts_a_point_in_the_future() -> None:
    first, last, wall = 1_000.0, 8_200.0, 2_000_000.0
    for speedup in (1.0, 10.0, 600.0, math.inf):
        off = tracks.replay_offset(first, last, wall, speedup)
        assert last + off == pytest.approx(wall + (0 if math.isinf(speedup) else 7200 / speedup))
        for t in (first, 4_000.0, last):
            publish_at = wall + (0 if math.isinf(speedup) else (t - first) / speedup)
            assert t + off <= publish_at + 1e-6


def test_owntracks_messages_one_per_second() -> None:
    pts = [tracks.TrackPoint(113.93, 22.53, 1000.2), tracks.TrackPoint(113.93, 22.53, 1000.7)]
    msgs, dropped = build_messages(
        pts, "E1", topic="owntracks", send_crs="wgs84", nonce="x", default_acc=None
    )
    assert len(msgs) == 1 and dropped == 1
    assert msgs[0].msg_id == "ot:E1:replay:1000"
    msgs, dropped = build_messages(
        pts, "E1", topic="checkin", send_crs="gcj02", nonce="x", default_acc=12.0
    )
    body = json.loads(msgs[0].payload)
    assert len(msgs) == 2 and body["crs"] == "gcj02" and body["acc"] == 12.0
    assert body["lon"] != 113.93  # sent in GCJ-02
