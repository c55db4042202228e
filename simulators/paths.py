"""Movement: a timed path of points, driving between places and walking on a site."""

from __future__ import annotations

import bisect
import math
import random

from simulators import world
from simulators.world import Site, haversine_m, offset


class Path:
    """A piecewise-linear trajectory: keypoints (t, lon, lat), interpolated in between."""

    def __init__(self, t: float, lon: float, lat: float) -> None:
        self.t = [t]
        self.pts = [(lon, lat)]
        self.labels: list[tuple[float, float, str]] = []  # (from, to, what)

    @property
    def now(self) -> float:
        return self.t[-1]

    @property
    def here(self) -> tuple[float, float]:
        return self.pts[-1]

    def go(self, lon: float, lat: float, speed_mps: float) -> None:
        d = haversine_m(*self.here, lon, lat)
        self.t.append(self.now + max(d / speed_mps, 1.0))
        self.pts.append((lon, lat))

    def wait_until(self, t: float) -> None:
        if t > self.now:
            self.t.append(t)
            self.pts.append(self.here)

    def label(self, start: float, what: str) -> None:
        self.labels.append((start, self.now, what))

    def at(self, t: float) -> tuple[float, float, float]:
        """(lon, lat, speed km/h) at time t (clamped to the path's span)."""
        if t <= self.t[0]:
            return self.pts[0][0], self.pts[0][1], 0.0
        if t >= self.t[-1]:
            return self.pts[-1][0], self.pts[-1][1], 0.0
        i = bisect.bisect_right(self.t, t)
        t0, t1 = self.t[i - 1], self.t[i]
        (x0, y0), (x1, y1) = self.pts[i - 1], self.pts[i]
        f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
        speed = haversine_m(x0, y0, x1, y1) / (t1 - t0) * 3.6 if t1 > t0 else 0.0
        return x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, speed

    def what(self, t: float) -> str:
        for a, b, w in self.labels:
            if a <= t <= b:
                return w
        return "travel"


def drive(rng: random.Random, path: Path, lon: float, lat: float) -> None:
    """Drive from where the path is to (lon, lat) via a bend (roads are not straight)."""
    x0, y0 = path.here
    d = haversine_m(x0, y0, lon, lat)
    speed = rng.uniform(50, 75) if d > 20_000 else rng.uniform(25, 40)
    mx, my = (x0 + lon) / 2, (y0 + lat) / 2
    bend = rng.uniform(-0.15, 0.15) * d
    # perpendicular in metres
    ex = (lon - x0) * world.metres_per_deg_lon(my)
    ny = (lat - y0) * world.M_PER_DEG_LAT
    norm = math.hypot(ex, ny) or 1.0
    bx, by = offset(mx, my, -ny / norm * bend, ex / norm * bend)
    path.go(bx, by, speed / 3.6)
    path.go(lon, lat, speed / 3.6)


def stay(
    rng: random.Random, path: Path, site: Site, until: float, label: str | None = None
) -> None:
    """Walk between random points on site with pauses until ``until``."""
    start = path.now
    while path.now < until:
        x, y = site.random_inner_point(rng)
        path.go(x, y, rng.uniform(0.8, 1.3))
        path.wait_until(min(until, path.now + rng.uniform(300, 2400)))
    path.label(start, label or f"site:{site.id}")
