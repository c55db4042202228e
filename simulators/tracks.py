"""Recorded tracks: GPX, CSV, OwnTracks (``.rec`` recorder files and JSON lines) and GeoJSON,
read into one list of :class:`TrackPoint` (WGS-84 after conversion), and the pure helpers
``replay`` needs (missing times, translation onto a site, re-timing).

Readers never guess silently: what they skip is counted in :class:`Track`.``skipped``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simulators.world import M_PER_DEG_LAT, haversine_m, metres_per_deg_lon

FORMATS = ("gpx", "csv", "owntracks", "geojson")
HDOP_TO_M = 5.0  # a common user-equivalent range error: accuracy ~ HDOP x 5 m
WALKING_MPS = 1.2


@dataclass(frozen=True)
class TrackPoint:
    lon: float
    lat: float
    ts: float | None = None  # epoch seconds
    acc: float | None = None  # metres
    speed_kmh: float | None = None
    batt: float | None = None
    ele: float | None = None


@dataclass
class Track:
    points: list[TrackPoint]
    fmt: str
    name: str = ""
    skipped: dict[str, int] = field(default_factory=dict)
    synthesized_times: int = 0

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n


class TrackError(ValueError):
    """The file cannot be read as a track (the message says why)."""


# --- formats ---------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    ext = path.suffix.lower()
    if ext == ".gpx":
        return "gpx"
    if ext in (".csv", ".tsv", ".txt"):
        return "csv"
    if ext in (".rec", ".jsonl", ".ndjson"):
        return "owntracks"
    if ext in (".geojson", ".json"):
        head = path.read_text(encoding="utf-8-sig", errors="replace")[:4000].lstrip()
        if head.startswith("{") and '"type"' in head and '"_type"' not in head[:200]:
            return "geojson"
        return "owntracks"
    raise TrackError(
        f"cannot tell the format of {path.name}: pass --format gpx|csv|owntracks|geojson"
    )


def read_track(path: Path, fmt: str | None = None) -> Track:
    fmt = fmt or detect_format(path)
    text = path.read_text(encoding="utf-8-sig")
    if fmt == "gpx":
        return parse_gpx(text)
    if fmt == "csv":
        return parse_csv(text)
    if fmt == "owntracks":
        return parse_owntracks(text)
    if fmt == "geojson":
        return parse_geojson(text)
    raise TrackError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def parse_time(value: Any) -> float | None:
    """Epoch seconds (milliseconds when >= 1e11), digits in a string, or ISO-8601 (naive means
    UTC); None for empty values."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TrackError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        v = float(value)
        return v / 1000.0 if v >= 1e11 else v
    text = str(value).strip()
    try:
        return parse_time(float(text))
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" UTC", "+00:00"))
    except ValueError as exc:
        raise TrackError(f"not a time: {text[:40]!r}") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def parse_gpx(text: str) -> Track:
    import gpxpy
    import gpxpy.gpx

    try:
        gpx = gpxpy.parse(text)
    except gpxpy.gpx.GPXException as exc:
        raise TrackError(f"not a GPX file: {exc}") from exc
    raw: list[Any] = [p for t in gpx.tracks for s in t.segments for p in s.points]
    kind = "track"
    if not raw:
        raw, kind = [p for r in gpx.routes for p in r.points], "route"
    if not raw:
        raw, kind = list(gpx.waypoints), "waypoints"
    track = Track([], "gpx", name=(gpx.tracks[0].name if gpx.tracks else gpx.name) or kind)
    for p in raw:
        ts = p.time.timestamp() if p.time is not None else None
        if p.time is not None and p.time.tzinfo is None:
            ts = p.time.replace(tzinfo=dt.UTC).timestamp()
        acc = p.horizontal_dilution * HDOP_TO_M if p.horizontal_dilution else None
        speed = getattr(p, "speed", None)
        track.points.append(
            TrackPoint(
                p.longitude,
                p.latitude,
                ts,
                acc,
                speed * 3.6 if speed is not None else None,
                None,
                p.elevation,
            )
        )
    return track


_COLS = {
    "lat": ("lat", "latitude", "y"),
    "lon": ("lon", "lng", "long", "longitude", "x"),
    "ts": ("ts", "time", "timestamp", "datetime", "date_time", "tst", "utc", "time_utc"),
    "acc": ("acc", "accuracy", "horizontal_accuracy", "accuracy_m"),
    "hdop": ("hdop",),
    "speed_ms": ("speed", "speed_ms", "speed_mps"),
    "speed_kmh": ("speed_kmh", "vel", "velocity_kmh"),
    "batt": ("batt", "battery", "battery_level"),
    "ele": ("ele", "elevation", "alt", "altitude"),
}


def parse_csv(text: str) -> Track:
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    if not reader.fieldnames:
        raise TrackError("CSV without a header line (need lat and lon columns)")
    names = {n.strip().lower(): n for n in reader.fieldnames if n}
    col = {k: next((names[c] for c in cands if c in names), None) for k, cands in _COLS.items()}
    if col["lat"] is None or col["lon"] is None:
        raise TrackError(f"CSV needs lat and lon columns; found {', '.join(reader.fieldnames)}")
    track = Track([], "csv")

    def num(row: dict[str, Any], key: str) -> float | None:
        name = col[key]
        v = row.get(name) if name else None
        if v is None or str(v).strip() == "":
            return None
        return float(v)

    for row in reader:
        try:
            lat, lon = num(row, "lat"), num(row, "lon")
            if lat is None or lon is None:
                track.skip("no position")
                continue
            ts = parse_time(row.get(col["ts"])) if col["ts"] else None
            acc = num(row, "acc")
            if acc is None and num(row, "hdop") is not None:
                acc = float(num(row, "hdop") or 0) * HDOP_TO_M
            speed = num(row, "speed_kmh")
            if speed is None and num(row, "speed_ms") is not None:
                speed = float(num(row, "speed_ms") or 0) * 3.6
            track.points.append(
                TrackPoint(lon, lat, ts, acc, speed, num(row, "batt"), num(row, "ele"))
            )
        except (ValueError, TrackError):
            track.skip("unreadable row")
    return track


def parse_owntracks(text: str) -> Track:
    """OwnTracks Recorder ``.rec`` lines (``ISO-TIME \\t TOPIC \\t JSON``) or JSON lines of
    OwnTracks messages (or of plain ``{lat, lon, tst|ts|time}`` objects)."""
    track = Track([], "owntracks")
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        payload = line
        if not line.startswith("{"):
            parts = line.split("\t")
            if len(parts) < 3 and "{" in line:
                parts = [line[: line.index("{")], "", line[line.index("{") :]]
            payload = parts[-1].strip()
        try:
            obj = json.loads(payload)
        except ValueError:
            track.skip("unreadable line")
            continue
        if not isinstance(obj, dict):
            track.skip("not an object")
            continue
        kind = obj.get("_type", "location")
        if kind != "location":
            track.skip(f"_type {kind}")
            continue
        try:
            lat, lon = float(obj["lat"]), float(obj["lon"])
            ts = parse_time(obj.get("tst", obj.get("ts", obj.get("time"))))
        except (KeyError, TypeError, ValueError, TrackError):
            track.skip("unreadable location")
            continue
        track.points.append(
            TrackPoint(
                lon,
                lat,
                ts,
                _opt(obj.get("acc")),
                _opt(obj.get("vel")),
                _opt(obj.get("batt")),
                _opt(obj.get("alt")),
            )
        )
    return track


def _opt(v: Any) -> float | None:
    try:
        return None if v is None or isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return None


_TIME_PROPS = ("time", "timestamp", "ts", "tst", "datetime")


def parse_geojson(text: str) -> Track:
    """Point features with a time property, or (Multi)LineStrings whose times are in
    ``properties.coordTimes`` / ``times`` (as togeojson writes them) or in a 4th coordinate."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise TrackError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise TrackError("GeoJSON must be an object")
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
    elif doc.get("type") == "Feature":
        features = [doc]
    else:
        features = [{"type": "Feature", "geometry": doc, "properties": {}}]
    track = Track([], "geojson")
    for f in features:
        geom = (f or {}).get("geometry") or {}
        props = (f or {}).get("properties") or {}
        gtype: Any = geom.get("type")
        coords: Any = geom.get("coordinates")
        try:
            if gtype == "Point":
                ts = parse_time(next((props[k] for k in _TIME_PROPS if k in props), None))
                track.points.append(_coord_point(coords, ts, props))
            elif gtype in ("LineString", "MultiLineString"):
                lines = [coords] if gtype == "LineString" else coords
                times = props.get("coordTimes") or props.get("times")
                if times and gtype == "LineString":
                    times = [times]
                for k, line in enumerate(lines):
                    line_times = times[k] if times and k < len(times) else None
                    for i, c in enumerate(line):
                        ts = (
                            parse_time(line_times[i])
                            if line_times and i < len(line_times)
                            else None
                        )
                        track.points.append(_coord_point(c, ts, {}))
            else:
                track.skip(f"geometry {gtype}")
        except (TypeError, ValueError, IndexError, KeyError, TrackError):
            track.skip("unreadable feature")
    return track


def _coord_point(c: Sequence[Any], ts: float | None, props: dict[str, Any]) -> TrackPoint:
    lon, lat = float(c[0]), float(c[1])
    ele = float(c[2]) if len(c) > 2 and c[2] is not None else None
    if ts is None and len(c) > 3:
        ts = parse_time(c[3])
    return TrackPoint(
        lon,
        lat,
        ts,
        _opt(props.get("acc", props.get("accuracy"))),
        _opt(props.get("speed_kmh", props.get("vel"))),
        _opt(props.get("batt", props.get("battery"))),
        ele,
    )


# --- cleaning and transforming ------------------------------------------------------------------


def valid_points(track: Track) -> list[TrackPoint]:
    out = []
    for p in track.points:
        if (
            not (math.isfinite(p.lon) and math.isfinite(p.lat))
            or abs(p.lat) > 90
            or abs(p.lon) > 180
        ):
            track.skip("coordinates out of range")
            continue
        out.append(p)
    return out


def fill_times(
    track: Track, points: list[TrackPoint], speed_mps: float = WALKING_MPS
) -> list[TrackPoint]:
    """Every point gets a time: missing ones are interpolated by distance between timed
    neighbours (extrapolated at ``speed_mps`` at the ends). A track whose times are all missing
    or all equal, or go backwards, is re-timed entirely at ``speed_mps`` (from 0)."""
    if not points:
        return points
    stamps = [p.ts for p in points if p.ts is not None]
    monotonic = all(b >= a for a, b in zip(stamps, stamps[1:], strict=False))
    if len(set(stamps)) < 2 or not monotonic:
        out = [replace(points[0], ts=0.0)]
        for p in points[1:]:
            d = haversine_m(out[-1].lon, out[-1].lat, p.lon, p.lat)
            out.append(replace(p, ts=out[-1].ts + max(1.0, d / speed_mps)))  # type: ignore[operator]
        track.synthesized_times = len(points)
        return out
    # cumulative distance
    cum = [0.0]
    for a, b in zip(points, points[1:], strict=False):
        cum.append(cum[-1] + haversine_m(a.lon, a.lat, b.lon, b.lat))
    known = [i for i, p in enumerate(points) if p.ts is not None]
    out = list(points)
    filled = 0
    for i, p in enumerate(points):
        if p.ts is not None:
            continue
        filled += 1
        before = max((k for k in known if k < i), default=None)
        after = min((k for k in known if k > i), default=None)
        if before is not None and after is not None:
            ta, tb = points[before].ts, points[after].ts
            span = cum[after] - cum[before]
            f = (cum[i] - cum[before]) / span if span > 0 else (i - before) / (after - before)
            out[i] = replace(p, ts=ta + f * (tb - ta))  # type: ignore[operator]
        elif before is not None:
            out[i] = replace(p, ts=points[before].ts + (cum[i] - cum[before]) / speed_mps)  # type: ignore[operator]
        else:
            assert after is not None
            out[i] = replace(p, ts=points[after].ts - (cum[after] - cum[i]) / speed_mps)  # type: ignore[operator]
    track.synthesized_times = filled
    return out


def centre(points: Iterable[TrackPoint]) -> tuple[float, float]:
    pts = list(points)
    lons = [p.lon for p in pts]
    lats = [p.lat for p in pts]
    return (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2


def translate(points: list[TrackPoint], to_lon: float, to_lat: float) -> list[TrackPoint]:
    """Move the track so its bounding-box centre lands on (to_lon, to_lat), keeping its shape
    and size in metres (east/north offsets from the centre are kept)."""
    if not points:
        return points
    c_lon, c_lat = centre(points)
    k_from = metres_per_deg_lon(c_lat)
    k_to = metres_per_deg_lon(to_lat)
    out = []
    for p in points:
        east = (p.lon - c_lon) * k_from
        north = (p.lat - c_lat) * M_PER_DEG_LAT
        out.append(replace(p, lon=to_lon + east / k_to, lat=to_lat + north / M_PER_DEG_LAT))
    return out


def to_wgs84(points: list[TrackPoint], crs: str) -> list[TrackPoint]:
    if crs == "wgs84" or not points:
        return points
    from geofence.coords import to_wgs84 as convert  # the published GCJ-02 / BD-09 formulas

    out = []
    for p in points:
        lon, lat = convert(p.lon, p.lat, crs)
        out.append(replace(p, lon=float(lon), lat=float(lat)))
    return out


def retime(points: list[TrackPoint], offset_s: float) -> list[TrackPoint]:
    return [replace(p, ts=(p.ts or 0.0) + offset_s) for p in points]


def replay_offset(first_ts: float, last_ts: float, wall_start: float, speedup: float) -> float:
    """Shift that puts a track on the wall clock so that no point is in the future when it is
    published at ``speedup`` (0 or inf: all at once): the last point's time is when it is
    published, earlier points are in the past by the time the replay compresses away."""
    span = last_ts - first_ts
    compressed = 0.0 if not speedup or math.isinf(speedup) else span / speedup
    return wall_start - first_ts - max(0.0, span - compressed)
