"""Small geometry helpers shared by fences and regions (internal).

Edge rules: ``polygonal_part`` repairs invalid input with ``shapely.make_valid`` and keeps
only the polygonal parts (collapsed slivers, lines and points are dropped); it returns
``None`` when nothing polygonal remains. ``buffer_metres`` buffers lon/lat geometry by a
distance in metres in a local equirectangular projection centred on the geometry.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

Polygonal: TypeAlias = Polygon | MultiPolygon

# WGS-84 ellipsoid
WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)


def metres_per_degree(lat_deg: float) -> tuple[float, float]:
    """(metres per degree of longitude, metres per degree of latitude) at ``lat_deg``.

    Exact on the WGS-84 ellipsoid for an infinitesimal step (meridional and prime-vertical
    radii of curvature).
    """
    phi = math.radians(lat_deg)
    s2 = math.sin(phi) ** 2
    w = math.sqrt(1.0 - WGS84_E2 * s2)
    n = WGS84_A / w
    m = WGS84_A * (1.0 - WGS84_E2) / (w**3)
    return n * math.cos(phi) * math.pi / 180.0, m * math.pi / 180.0


def polygonal_part(geom: BaseGeometry | None) -> Polygonal | None:
    """Valid Polygon/MultiPolygon made of the polygonal parts of ``geom``, or None."""
    if geom is None or geom.is_empty:
        return None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    polys: list[Polygon] = []
    _collect(geom, polys)
    polys = [p for p in polys if not p.is_empty and p.area > 0.0]
    if not polys:
        return None
    if len(polys) == 1:
        return polys[0]
    out = MultiPolygon(polys)
    if not out.is_valid:  # parts of a repaired collection may touch / overlap
        merged = shapely.union_all(polys)
        res: list[Polygon] = []
        _collect(merged, res)
        return res[0] if len(res) == 1 else MultiPolygon(res)
    return out


def _collect(geom: BaseGeometry, out: list[Polygon]) -> None:
    if isinstance(geom, Polygon):
        out.append(geom)
    elif isinstance(geom, MultiPolygon | GeometryCollection):
        for g in geom.geoms:
            _collect(g, out)


def buffer_metres(geom: Polygonal, distance_m: float) -> Polygonal | None:
    """Buffer lon/lat ``geom`` by ``distance_m`` metres (negative shrinks).

    Approach: project to a local equirectangular plane centred on the geometry's bounding
    box centre (x = dlon * metres_per_degree_lon(lat0), y = dlat * metres_per_degree_lat(lat0)),
    buffer there (round joins, 8 segments per quarter circle), project back. For a site a
    few km across the scale error is below ~0.1 % of the buffer distance (it grows with
    the north-south extent as |dlat| * tan(lat0)); use it for site-sized fences, not for
    provinces. Returns None when a negative buffer removes everything.
    """
    if distance_m == 0.0:
        return geom
    minx, miny, maxx, maxy = geom.bounds
    lon0 = (minx + maxx) / 2.0
    lat0 = (miny + maxy) / 2.0
    kx, ky = metres_per_degree(lat0)

    def fwd(c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.column_stack([(c[:, 0] - lon0) * kx, (c[:, 1] - lat0) * ky])

    def inv(c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.column_stack([c[:, 0] / kx + lon0, c[:, 1] / ky + lat0])

    local = shapely.transform(geom, fwd)
    buffered = shapely.buffer(local, distance_m, quad_segs=8)
    return polygonal_part(shapely.transform(buffered, inv))
