"""Batch point-in-polygon locator on a hashed multi-level grid (internal).

``GridLocator(geoms).query(x, y)`` returns every (point, geometry) pair where the
geometry *covers* the point (boundary included), sorted by point then geometry.

How it works: each geometry is assigned to a grid level (cell size ``cell * 4**level``)
where its bounding box spans at most ``max_cells`` cells. Per geometry, cells crossed by
its boundary (boundary densified to quarter-cell segments, each segment's bbox grown by a
tiny epsilon) are *partial*; the other cells of its bbox are wholly inside or outside,
decided by testing the cell centre. Inside cells are stored as *full*, outside cells are
dropped. A query hashes each point to its cell (numpy), looks the cell up with
``searchsorted``, accepts full cells directly and runs the exact prepared
``shapely.covers`` only for partial cells. Points far from every geometry never become
shapely objects, which is where the speed comes from.

Correctness does not depend on the cell size: the epsilon (1e-6 cell, >= 1e-9 deg) is
many orders above float rounding, so a point's computed cell is never on the other side
of a boundary than the point. Non-finite coordinates match nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

_MIN_CELL = 1e-4
_MAX_CELL = 1.0


@dataclass(frozen=True)
class _Level:
    cell: float
    eps: float
    x0: float
    y0: float
    nx: int
    ny: int
    keys: npt.NDArray[np.int64]  # sorted unique cell keys
    offsets: npt.NDArray[np.int64]  # CSR offsets into entry arrays, len(keys) + 1
    entry_geom: IntArray
    entry_full: npt.NDArray[np.bool_]


def _empty_pairs() -> tuple[IntArray, IntArray]:
    return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)


def _expand(starts: npt.NDArray[np.int64], counts: npt.NDArray[np.int64]) -> IntArray:
    """Concatenate ranges [starts[i], starts[i] + counts[i])."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.intp)
    ends = np.cumsum(counts)
    base = np.repeat(starts - (ends - counts), counts)
    return (np.arange(total, dtype=np.int64) + base).astype(np.intp)


class GridLocator:
    """Find every (point, geometry) pair where the geometry covers the point."""

    def __init__(
        self,
        geoms: Sequence[BaseGeometry | None],
        cell_deg: float | None = None,
        max_cells: int = 1024,
    ) -> None:
        arr = np.empty(len(geoms), dtype=object)
        arr[:] = [g if g is not None else shapely.Polygon() for g in geoms]
        shapely.prepare(arr)
        self._geoms = arr
        self._levels: list[_Level] = []
        if len(arr) == 0:
            self._bounds = np.empty((0, 4))
            return
        bounds = shapely.bounds(arr)
        self._bounds = bounds
        ok = ~shapely.is_empty(arr) & np.isfinite(bounds).all(axis=1)
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return
        w = bounds[idx, 2] - bounds[idx, 0]
        h = bounds[idx, 3] - bounds[idx, 1]
        span = np.maximum(w, h)
        if cell_deg is None:
            cell = float(np.clip(np.median(span) / 2.0, _MIN_CELL, _MAX_CELL))
        else:
            if not (cell_deg > 0 and math.isfinite(cell_deg)):
                raise ValueError("cell_deg must be a positive number")
            cell = float(cell_deg)
        # level per geometry: smallest L with bbox cells <= max_cells
        side = max(1.0, math.sqrt(max_cells))
        ratio = np.maximum(span / (cell * side), 1.0)
        level = np.ceil(np.log(ratio) / np.log(4.0) - 1e-12).astype(np.int64)
        level = np.maximum(level, 0)
        for lv in np.unique(level):
            sel = idx[level == lv]
            self._levels.append(self._build_level(sel, cell * 4.0 ** int(lv)))

    # -- build -------------------------------------------------------------------------

    def _build_level(self, sel: IntArray, c: float) -> _Level:
        arr = self._geoms
        b = self._bounds[sel]
        eps = max(c * 1e-6, 1e-9)
        x0 = math.floor((float(b[:, 0].min()) - 2 * eps) / c) * c - c
        y0 = math.floor((float(b[:, 1].min()) - 2 * eps) / c) * c - c
        nx = int(math.ceil((float(b[:, 2].max()) + 2 * eps - x0) / c)) + 2
        ny = int(math.ceil((float(b[:, 3].max()) + 2 * eps - y0) / c)) + 2
        if float(nx) * float(ny) * float(len(self._geoms)) >= 2.0**62:
            return self._build_level(sel, c * 4.0)  # keep int64 keys exact: coarser grid

        def cx(v: FloatArray) -> npt.NDArray[np.int64]:
            return np.floor((v - x0) / c).astype(np.int64)

        def cy(v: FloatArray) -> npt.NDArray[np.int64]:
            return np.floor((v - y0) / c).astype(np.int64)

        # boundary cells
        lines = shapely.segmentize(shapely.boundary(arr[sel]), c / 4.0)
        parts, part_owner = shapely.get_parts(lines, return_index=True)
        coords, coord_part = shapely.get_coordinates(parts, return_index=True)
        same = coord_part[1:] == coord_part[:-1]
        a = coords[:-1][same]
        bb = coords[1:][same]
        seg_geom = sel[part_owner[coord_part[:-1][same]]]
        sx0 = cx(np.minimum(a[:, 0], bb[:, 0]) - eps)
        sx1 = cx(np.maximum(a[:, 0], bb[:, 0]) + eps)
        sy0 = cy(np.minimum(a[:, 1], bb[:, 1]) - eps)
        sy1 = cy(np.maximum(a[:, 1], bb[:, 1]) + eps)
        bkeys = np.concatenate([sx0 * ny + sy0, sx1 * ny + sy0, sx0 * ny + sy1, sx1 * ny + sy1])
        bgeom = np.concatenate([seg_geom] * 4)
        ng = len(arr)
        bset = np.unique(bkeys * ng + bgeom.astype(np.int64))
        bkeys, bgeom = bset // ng, bset % ng

        # all bbox cells, per geometry
        gx0 = cx(b[:, 0] - eps)
        gx1 = cx(b[:, 2] + eps)
        gy0 = cy(b[:, 1] - eps)
        gy1 = cy(b[:, 3] + eps)
        nxs = gx1 - gx0 + 1
        nys = gy1 - gy0 + 1
        cnt = nxs * nys
        cell_i = _expand(np.zeros_like(cnt), cnt)  # 0..cnt-1 per geometry
        owner = np.repeat(np.arange(len(sel)), cnt)
        ix = gx0[owner] + cell_i // nys[owner]
        iy = gy0[owner] + cell_i % nys[owner]
        akeys = ix * ny + iy
        ageom = sel[owner].astype(np.int64)
        # drop boundary cells (they are partial) and test the rest by their centre
        aset = akeys * ng + ageom
        inner = ~np.isin(aset, bset, assume_unique=True)
        ckeys = akeys[inner]
        cgeom = ageom[inner]
        centres = shapely.points(
            x0 + (ix[inner] + 0.5) * c,
            y0 + (iy[inner] + 0.5) * c,
        )
        full = shapely.covers(arr[cgeom], centres)
        keys = np.concatenate([bkeys, ckeys[full]])
        geom = np.concatenate([bgeom, cgeom[full]])
        isfull = np.concatenate([np.zeros(len(bkeys), bool), np.ones(int(full.sum()), bool)])
        order = np.lexsort((geom, keys))
        keys, geom, isfull = keys[order], geom[order], isfull[order]
        ukeys, starts = np.unique(keys, return_index=True)
        offsets = np.append(starts, len(keys)).astype(np.int64)
        return _Level(
            cell=c,
            eps=eps,
            x0=x0,
            y0=y0,
            nx=nx,
            ny=ny,
            keys=ukeys.astype(np.int64),
            offsets=offsets,
            entry_geom=geom.astype(np.intp),
            entry_full=isfull,
        )

    # -- query -------------------------------------------------------------------------

    def query(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        x = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        y = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        if x.shape != y.shape:
            raise ValueError("lon and lat must have the same length")
        if not self._levels or x.size == 0:
            return _empty_pairs()
        out_p: list[IntArray] = []
        out_g: list[IntArray] = []
        for lv in self._levels:
            p, g = self._query_level(lv, x, y)
            out_p.append(p)
            out_g.append(g)
        pi = np.concatenate(out_p)
        gi = np.concatenate(out_g)
        order = np.lexsort((gi, pi))
        pi, gi = pi[order], gi[order]
        return pi, gi

    def _query_level(self, lv: _Level, x: FloatArray, y: FloatArray) -> tuple[IntArray, IntArray]:
        fx = np.floor((x - lv.x0) / lv.cell)
        fy = np.floor((y - lv.y0) / lv.cell)
        inside = (fx >= 0) & (fx < lv.nx) & (fy >= 0) & (fy < lv.ny)
        pidx = np.flatnonzero(inside)
        if pidx.size == 0:
            return _empty_pairs()
        key = fx[pidx].astype(np.int64) * lv.ny + fy[pidx].astype(np.int64)
        pos = np.searchsorted(lv.keys, key)
        np.minimum(pos, len(lv.keys) - 1, out=pos)
        hit = lv.keys[pos] == key
        pidx = pidx[hit]
        pos = pos[hit]
        if pidx.size == 0:
            return _empty_pairs()
        starts = lv.offsets[pos]
        counts = lv.offsets[pos + 1] - starts
        entry = _expand(starts, counts)
        pp = np.repeat(pidx, counts)
        gg = lv.entry_geom[entry]
        full = lv.entry_full[entry]
        # partial: bbox filter, then exact prepared covers
        part = np.flatnonzero(~full)
        pp_part = pp[part]
        gg_part = gg[part]
        b = self._bounds[gg_part]
        px = x[pp_part]
        py = y[pp_part]
        inb = (px >= b[:, 0]) & (px <= b[:, 2]) & (py >= b[:, 1]) & (py <= b[:, 3])
        pp_part, gg_part, px, py = pp_part[inb], gg_part[inb], px[inb], py[inb]
        ok = shapely.covers(self._geoms[gg_part], shapely.points(px, py))
        keep = full.copy()
        keep[part[inb][ok]] = True
        return pp[keep].astype(np.intp), gg[keep].astype(np.intp)
