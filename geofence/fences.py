"""Project fences (site polygons) and batch classification of fixes against them.

Edge rules:

* A fence *covers* a fix when the fix is inside the polygon or on its boundary (edges and
  vertices count as inside; points in a hole do not, points on a hole's ring do).
* Geometries must be Polygon or MultiPolygon in WGS-84 lon/lat. Invalid polygons are
  repaired with ``shapely.make_valid`` keeping only polygonal parts; anything without a
  polygonal part raises ``ValueError`` at ``build``.
* ``buffer_m`` > 0 grows the fence by that many metres, < 0 shrinks it (see
  ``_geom.buffer_metres``: local equirectangular projection, error < 0.1 % of the buffer for
  site-sized fences). A fence shrunk to nothing stays in the index and covers nothing.
* Fence ids must be unique (``ValueError``). ``region_code`` is normalised to 6 digits
  (``''`` stays ``''``).
* Fixes with NaN/inf coordinates are covered by nothing.
* The index is immutable: build a new one when fences change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from shapely.geometry import MultiPolygon, Polygon

from geofence._geom import buffer_metres, polygonal_part
from geofence._grid import GridLocator
from geofence.codes import normalise_code

__all__ = ["Fence", "FenceIndex"]

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Fence:
    """One project site: ``geometry`` in WGS-84 lon/lat, optional region and buffer."""

    id: str
    geometry: Polygon | MultiPolygon
    region_code: str = ""
    buffer_m: float = 0.0


class FenceIndex:
    """Immutable spatial index over fences; build once with ``FenceIndex.build``."""

    __slots__ = ("_geoms", "_locator", "_pos", "fences", "ids", "region_codes")

    fences: tuple[Fence, ...]
    ids: npt.NDArray[np.object_]
    region_codes: npt.NDArray[np.object_]
    _geoms: tuple[Polygon | MultiPolygon | None, ...]
    _pos: dict[str, int]
    _locator: GridLocator

    def __init__(self) -> None:  # use FenceIndex.build
        raise TypeError("use FenceIndex.build(fences)")

    @classmethod
    def build(cls, fences: Sequence[Fence], *, cell_deg: float | None = None) -> FenceIndex:
        """Index ``fences`` (any order; index ``i`` in results refers to ``fences[i]``).

        ``cell_deg`` overrides the grid cell size used to skip fixes far from any fence
        (default: derived from the fences' median size).
        """
        self = object.__new__(cls)
        seen: set[str] = set()
        geoms: list[Polygon | MultiPolygon | None] = []
        codes: list[str] = []
        for f in fences:
            if f.id in seen:
                raise ValueError(f"duplicate fence id {f.id!r}")
            seen.add(f.id)
            if not isinstance(f.geometry, Polygon | MultiPolygon):
                raise ValueError(
                    f"fence {f.id!r}: geometry must be Polygon or MultiPolygon, "
                    f"got {getattr(f.geometry, 'geom_type', type(f.geometry).__name__)}"
                )
            geom = polygonal_part(f.geometry)
            if geom is None:
                raise ValueError(f"fence {f.id!r}: geometry has no area")
            buf = float(f.buffer_m)
            if not np.isfinite(buf):
                raise ValueError(f"fence {f.id!r}: buffer_m must be finite")
            if buf != 0.0:
                geom = buffer_metres(geom, buf)
            geoms.append(geom)
            codes.append(normalise_code(f.region_code) if f.region_code else "")
        self.fences = tuple(fences)
        ids = np.empty(len(fences), dtype=object)
        ids[:] = [f.id for f in fences]
        rc = np.empty(len(fences), dtype=object)
        rc[:] = codes
        ids.flags.writeable = False
        rc.flags.writeable = False
        self.ids = ids
        self.region_codes = rc
        self._geoms = tuple(geoms)
        self._pos = {f.id: i for i, f in enumerate(fences)}
        self._locator = GridLocator(geoms, cell_deg=cell_deg)
        return self

    def __len__(self) -> int:
        return len(self.fences)

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, "_locator"):
            raise AttributeError("FenceIndex is immutable")
        object.__setattr__(self, name, value)

    def geometry(self, i: int) -> Polygon | MultiPolygon | None:
        """The indexed (repaired, buffered) geometry of fence ``i``; None if buffered away."""
        return self._geoms[i]

    def index_of(self, fence_id: str) -> int:
        """Position of ``fence_id`` (``KeyError`` if unknown)."""
        return self._pos[fence_id]

    def classify(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Every (fix, fence) pair where the fence covers the fix.

        ``lon``/``lat``: 1-D arrays (or scalars) of equal length, WGS-84 degrees. Returns
        ``(point_idx, fence_idx)`` integer arrays, sorted by point then fence. A fix in
        several (overlapping) fences appears once per fence; a fix in none does not appear.
        """
        return self._locator.query(lon, lat)

    def covering_ids(self, lon: float, lat: float) -> list[str]:
        """Ids of the fences covering one fix, in index order."""
        _, fi = self.classify(np.array([lon], dtype=np.float64), np.array([lat], dtype=np.float64))
        return [str(self.ids[i]) for i in fi]
