"""`sitewatch replay FILE`: a recorded track published as an engineer's phone would send it.

* Formats: GPX (tracks, else routes, else waypoints), CSV (header with lat/lon and optional
  time, acc/hdop, speed, batt), OwnTracks Recorder ``.rec`` / JSON lines, GeoJSON (Points with
  a time property, LineStrings with ``coordTimes``/``times`` or a 4th coordinate).
* ``--crs gcj02|bd09``: the file's coordinates are in that system (Chinese map apps). Check-ins
  are sent in it with ``crs`` set, as a phone using a Chinese map SDK does; OwnTracks has no
  ``crs`` field, so OwnTracks messages carry WGS-84.
* ``--translate-to PROJECT_ID`` or ``lon,lat``: the track is moved (shape and size kept) so its
  centre is on the project's centroid or the point.
* Times: missing ones are interpolated (or synthesized at walking speed when the file has none);
  by default the track is moved to the wall clock so that it ends as the replay ends and no
  point is in the future when sent; ``--keep-time`` keeps the recorded times, ``--start``
  puts the first point at a given time.
* ``--speedup X``: X recorded seconds per wall second (0: as fast as ``--rate`` allows).
* Identity: an unknown ``--engineer`` is registered (``--region`` or the target project's
  region) and publishes with its own MQTT password; a known one is published for with the
  service identity of ``endpoints.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any

from simulators.publish import Progress, Publisher, pace_and_publish
from simulators.registry import api_client, check, load_endpoints
from simulators.tracks import (
    TrackPoint,
    fill_times,
    read_track,
    replay_offset,
    retime,
    to_wgs84,
    translate,
    valid_points,
)

log = logging.getLogger("sitewatch.replay")


@dataclass
class Sent:
    ts: float
    identity: str
    topic: str
    payload: bytes
    msg_id: str
    lon: float  # WGS-84
    lat: float


def resolve_target(api: Any, spec: str) -> tuple[float, float, str | None]:
    """(lon, lat, region_code) of ``lon,lat`` or of a project's centroid."""
    parts = spec.split(",")
    if len(parts) == 2:
        try:
            return float(parts[0]), float(parts[1]), None
        except ValueError:
            pass
    from shapely.geometry import shape

    feature = check(api.get(f"/api/projects/{spec}"), f"project {spec}")
    c = shape(feature["geometry"]).centroid
    return c.x, c.y, feature["properties"].get("region_code")


def ensure_engineer(api: Any, engineer_id: str, region: str | None) -> tuple[str | None, bool]:
    """The engineer's MQTT password if we registered it now (else None), and whether it was new."""
    r = api.get(f"/api/engineers/{engineer_id}")
    if r.status_code == 200:
        return None, False
    if r.status_code != 404:
        check(r, f"engineer {engineer_id}")
    if not region:
        raise SystemExit(
            f"engineer {engineer_id!r} is not registered: pass --region CODE (its registered "
            "region) or --translate-to a project so it can be registered"
        )
    body = {
        "id": engineer_id,
        "name": f"回放 {engineer_id}",
        "registered_region": region,
        "cert_status": "valid",
    }
    created = check(api.post("/api/engineers", json=body), f"registering {engineer_id}")
    return created["mqtt_password"], True


def build_messages(
    points: list[TrackPoint],
    engineer_id: str,
    *,
    topic: str,
    send_crs: str,
    nonce: str,
    default_acc: float | None,
) -> tuple[list[Sent], int]:
    """Messages for the points (WGS-84, final times); returns them and how many points were
    dropped (OwnTracks ids are per second: a second point within one second is not sent)."""
    out: list[Sent] = []
    dropped = 0
    last_second: int | None = None
    for i, p in enumerate(points):
        assert p.ts is not None
        acc = p.acc if p.acc is not None else default_acc
        if topic == "owntracks":
            tst = int(p.ts)
            if tst == last_second:
                dropped += 1
                continue
            last_second = tst
            body: dict[str, Any] = {
                "_type": "location",
                "tid": engineer_id[-2:].upper(),
                "tst": tst,
                "lat": round(p.lat, 7),
                "lon": round(p.lon, 7),
            }
            if acc is not None:
                body["acc"] = int(round(acc))
            if p.speed_kmh is not None:
                body["vel"] = int(round(p.speed_kmh))
            if p.batt is not None:
                body["batt"] = int(p.batt)
            if p.ele is not None:
                body["alt"] = int(round(p.ele))
            msg_id = f"ot:{engineer_id}:replay:{tst}"
            out.append(
                Sent(
                    float(tst),
                    engineer_id,
                    f"owntracks/{engineer_id}/replay",
                    json.dumps(body).encode(),
                    msg_id,
                    body["lon"],
                    body["lat"],
                )
            )
            continue
        lon, lat = p.lon, p.lat
        if send_crs != "wgs84":
            from geofence.coords import wgs84_to_bd09, wgs84_to_gcj02

            fwd = wgs84_to_gcj02 if send_crs == "gcj02" else wgs84_to_bd09
            x, y = fwd(lon, lat)
            lon, lat = float(x), float(y)
        msg_id = f"{engineer_id}-r{nonce}-{i}"
        body = {
            "msg_id": msg_id,
            "engineer_id": engineer_id,
            "ts": round(p.ts, 3),
            "lat": round(lat, 8),
            "lon": round(lon, 8),
            "kind": "position",
        }
        if acc is not None:
            body["acc"] = round(acc, 1)
        if send_crs != "wgs84":
            body["crs"] = send_crs
        out.append(
            Sent(
                p.ts,
                engineer_id,
                f"sitewatch/checkin/{engineer_id}",
                json.dumps(body, ensure_ascii=False).encode(),
                msg_id,
                p.lon,
                p.lat,
            )
        )
    return out, dropped


def run_replay(args: argparse.Namespace) -> int:
    track = read_track(args.file, args.format)
    points = valid_points(track)
    if not points:
        raise SystemExit(f"{args.file}: no usable points ({track.skipped or 'empty'})")
    points = to_wgs84(points, args.crs)
    points = fill_times(track, points)
    points.sort(key=lambda p: p.ts or 0.0)
    topic = args.topic or ("owntracks" if track.fmt == "owntracks" else "checkin")
    endpoints, token = load_endpoints(args.data_dir)
    engineer_id = args.engineer or f"REPLAY-{secrets.token_hex(3).upper()}"
    with api_client(endpoints, token) as api:
        region = args.region
        if args.translate_to:
            lon, lat, project_region = resolve_target(api, args.translate_to)
            points = translate(points, lon, lat)
            region = region or project_region
        password, registered = ensure_engineer(api, engineer_id, region)
    first, last = points[0].ts or 0.0, points[-1].ts or 0.0
    if args.keep_time:
        offset = 0.0
    elif args.start:
        start = dt.datetime.fromisoformat(args.start)
        if start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        offset = start.timestamp() - first
    else:
        offset = replay_offset(first, last, time.time(), args.speedup or math.inf)
    points = retime(points, offset)
    send_crs = args.crs if topic == "checkin" else "wgs84"
    messages, dropped = build_messages(
        points,
        engineer_id,
        topic=topic,
        send_crs=send_crs,
        nonce=secrets.token_hex(3),
        default_acc=args.acc,
    )
    endpoints_pub = dict(endpoints)
    creds = {engineer_id: password} if password else {}
    with Publisher(endpoints_pub, credentials=creds, per_identity=bool(password)) as pub:
        stats = pace_and_publish(
            pub,
            messages,
            len(messages),
            rate=args.rate or None,
            speedup=args.speedup or None,
            progress=Progress(len(messages), f"replay {args.file.name}"),
        )
    summary = {
        "file": str(args.file),
        "format": track.fmt,
        "engineer_id": engineer_id,
        "registered": registered,
        "topic": topic,
        "crs_sent": send_crs,
        "points": len(points),
        "published": stats.messages,
        "dropped_same_second": dropped,
        "skipped": track.skipped,
        "synthesized_times": track.synthesized_times,
        "first_ts": messages[0].ts if messages else None,
        "last_ts": messages[-1].ts if messages else None,
        "publish": stats.to_dict(),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            **summary,
            "messages": [
                {"msg_id": m.msg_id, "ts": m.ts, "lon": m.lon, "lat": m.lat, "topic": m.topic}
                for m in messages
            ],
        }
        args.out.write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from simulators.arguments import replay_arguments

    p = argparse.ArgumentParser(prog="sitewatch replay")
    replay_arguments(p)
    return run_replay(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
