"""Throughput benchmark of the geofence engine (one process, one core, no I/O).

``fixes_per_second()`` builds ``n_fences`` random project squares (100 m to 1 km side)
scattered over mainland China's bounding box and classifies ``n_fixes`` fixes against them.
Fixes are half "near a site" (within ~1.2x a site's half-width of a random site's centre,
about a quarter of all fixes end up on site) and half uniform over the box. When
``districts`` is given (regions or a ``RegionIndex``), the same fixes are also located
(district / city / province). Timings include creating any shapely objects; they exclude
generating the random input. Deterministic for a given ``seed``. Prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from geofence._geom import metres_per_degree
from geofence.fences import Fence, FenceIndex
from geofence.regions import Region, RegionIndex

__all__ = ["fixes_per_second", "random_fences"]

CHINA_BBOX = (73.0, 18.0, 135.0, 53.0)


def random_fences(n: int, seed: int = 0) -> list[Fence]:
    """``n`` axis-aligned squares, 100 m - 1 km side, uniform over ``CHINA_BBOX``."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = CHINA_BBOX
    cx = rng.uniform(x0, x1, n)
    cy = rng.uniform(y0, y1, n)
    half_m = rng.uniform(50.0, 500.0, n)
    kx = np.array([metres_per_degree(float(lat))[0] for lat in cy])
    ky = np.array([metres_per_degree(float(lat))[1] for lat in cy])
    boxes = shapely.box(cx - half_m / kx, cy - half_m / ky, cx + half_m / kx, cy + half_m / ky)
    return [Fence(id=f"P{i:06d}", geometry=boxes[i]) for i in range(n)]


def _fixes(fences: Sequence[Fence], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    x0, y0, x1, y1 = CHINA_BBOX
    near = n // 2
    lon = rng.uniform(x0, x1, n)
    lat = rng.uniform(y0, y1, n)
    if fences and near:
        b = shapely.bounds(np.array([f.geometry for f in fences], dtype=object))
        k = rng.integers(0, len(fences), near)
        cx = (b[k, 0] + b[k, 2]) / 2
        cy = (b[k, 1] + b[k, 3]) / 2
        hw = (b[k, 2] - b[k, 0]) / 2 * 1.2
        hh = (b[k, 3] - b[k, 1]) / 2 * 1.2
        lon[:near] = cx + rng.uniform(-1, 1, near) * hw
        lat[:near] = cy + rng.uniform(-1, 1, near) * hh
    perm = rng.permutation(n)
    return lon[perm], lat[perm]


def fixes_per_second(
    n_fences: int = 10_000,
    n_fixes: int = 1_000_000,
    districts: Sequence[Region] | RegionIndex | None = None,
    *,
    seed: int = 0,
    repeat: int = 3,
) -> dict[str, Any]:
    """Measure classify (and locate) throughput; returns a dict of figures.

    Keys: ``geofence_fixes_per_s`` (= classify), ``classify_fixes_per_s``,
    ``classify_on_site_fixes_per_s`` (only fixes that are on some site),
    ``locate_fixes_per_s`` and ``classify_locate_fixes_per_s`` (None without districts),
    ``fence_build_s``, ``region_build_s``, ``n_fences``, ``n_fixes``, ``n_regions``,
    ``on_site_fraction``, ``located_fraction``. Each timing is the best of ``repeat`` runs.
    """
    fences = random_fences(n_fences, seed)
    t0 = time.perf_counter()
    index = FenceIndex.build(fences)
    fence_build_s = time.perf_counter() - t0
    lon, lat = _fixes(fences, n_fixes, seed)
    index.classify(lon[:1000], lat[:1000])  # warm-up

    def best(fn: Any) -> tuple[float, Any]:
        times = []
        res = None
        for _ in range(max(1, repeat)):
            t = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - t)
        return min(times), res

    t_cls, (pi, _fi) = best(lambda: index.classify(lon, lat))
    on_site = np.unique(pi)
    t_on, _ = best(lambda: index.classify(lon[on_site], lat[on_site]))

    def rate(n: int, t: float) -> float:
        return float(n / t) if t > 0 else float("inf")

    out: dict[str, Any] = {
        "n_fences": n_fences,
        "n_fixes": n_fixes,
        "fence_build_s": fence_build_s,
        "classify_fixes_per_s": rate(n_fixes, t_cls),
        "classify_on_site_fixes_per_s": rate(len(on_site), t_on) if len(on_site) else None,
        "on_site_fraction": len(on_site) / n_fixes if n_fixes else 0.0,
        "geofence_fixes_per_s": rate(n_fixes, t_cls),
        "n_regions": 0,
        "region_build_s": None,
        "locate_fixes_per_s": None,
        "classify_locate_fixes_per_s": None,
        "located_fraction": None,
    }
    if districts is not None:
        if isinstance(districts, RegionIndex):
            rindex = districts
            out["region_build_s"] = 0.0
        else:
            t0 = time.perf_counter()
            rindex = RegionIndex.build(districts)
            out["region_build_s"] = time.perf_counter() - t0
        out["n_regions"] = len(rindex)
        rindex.locate(lon[:1000], lat[:1000])
        t_loc, (d, c, p) = best(lambda: rindex.locate(lon, lat))
        out["locate_fixes_per_s"] = rate(n_fixes, t_loc)
        out["classify_locate_fixes_per_s"] = rate(n_fixes, t_cls + t_loc)
        out["located_fraction"] = float(np.mean(p != "")) if n_fixes else 0.0
    return out
