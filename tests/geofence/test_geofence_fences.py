from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon

from geofence._geom import metres_per_degree
from geofence.fences import Fence, FenceIndex
from geofence.geodesic import geodesic_distance_m

SQUARE = shapely.box(113.90, 22.50, 113.92, 22.52)
HOLED = Polygon(
    [(114.0, 22.5), (114.1, 22.5), (114.1, 22.6), (114.0, 22.6)],
    holes=[[(114.04, 22.54), (114.06, 22.54), (114.06, 22.56), (114.04, 22.56)]],
)
MULTI = MultiPolygon(
    [shapely.box(115.0, 23.0, 115.01, 23.01), shapely.box(115.02, 23.0, 115.03, 23.01)]
)


@pytest.fixture(scope="module")
def index() -> FenceIndex:
    return FenceIndex.build(
        [
            Fence("sq", SQUARE, "156440305"),
            Fence("holed", HOLED, "440300"),
            Fence("multi", MULTI),
        ]
    )


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (113.91, 22.51, ["sq"]),  # inside
        (113.90, 22.51, ["sq"]),  # on west edge
        (113.92, 22.505, ["sq"]),  # on east edge
        (113.91, 22.52, ["sq"]),  # on north edge
        (113.90, 22.50, ["sq"]),  # on a vertex
        (113.92, 22.52, ["sq"]),  # on the opposite vertex
        (113.8999999, 22.51, []),  # just outside
        (114.05, 22.55, []),  # in the hole
        (114.04, 22.55, ["holed"]),  # on the hole's ring
        (114.06, 22.56, ["holed"]),  # on a hole vertex
        (114.02, 22.52, ["holed"]),  # in the shell, outside the hole
        (115.005, 23.005, ["multi"]),  # first part
        (115.025, 23.005, ["multi"]),  # second part
        (115.015, 23.005, []),  # gap between parts
        (115.01, 23.0, ["multi"]),  # corner of a part
        (0.0, 0.0, []),
        (float("nan"), 22.51, []),
        (113.91, float("inf"), []),
    ],
)
def test_edge_cases(index: FenceIndex, lon: float, lat: float, expected: list[str]) -> None:
    assert index.covering_ids(lon, lat) == expected


def test_attributes(index: FenceIndex) -> None:
    assert len(index) == 3
    assert list(index.ids) == ["sq", "holed", "multi"]
    assert index.ids.dtype == object
    assert list(index.region_codes) == ["440305", "440300", ""]
    assert index.index_of("holed") == 1
    with pytest.raises(AttributeError):
        index.ids = np.array([])  # type: ignore[misc]
    with pytest.raises(ValueError):
        index.ids[0] = "x"


def test_classify_pairs_sorted(index: FenceIndex) -> None:
    lon = np.array([115.005, 113.91, 0.0, 114.02, 113.90])
    lat = np.array([23.005, 22.51, 0.0, 22.52, 22.50])
    pi, fi = index.classify(lon, lat)
    assert pi.tolist() == [0, 1, 3, 4]
    assert fi.tolist() == [2, 0, 1, 0]
    assert np.issubdtype(pi.dtype, np.integer) and np.issubdtype(fi.dtype, np.integer)


def test_overlapping_fences_all_reported() -> None:
    idx = FenceIndex.build(
        [
            Fence("b", shapely.box(0, 0, 2, 2)),
            Fence("a", shapely.box(1, 1, 3, 3)),
            Fence("c", shapely.box(1, 1, 2, 2)),
        ]
    )
    assert idx.covering_ids(1.5, 1.5) == ["b", "a", "c"]
    assert idx.covering_ids(2.0, 2.0) == ["b", "a", "c"]  # shared corner counts for all
    pi, fi = idx.classify(np.array([1.5, 0.5]), np.array([1.5, 0.5]))
    assert pi.tolist() == [0, 0, 0, 1] and fi.tolist() == [0, 1, 2, 0]


def test_empty_index() -> None:
    idx = FenceIndex.build([])
    assert len(idx) == 0
    pi, fi = idx.classify(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert pi.size == 0 and fi.size == 0
    assert idx.covering_ids(1.0, 1.0) == []
    assert idx.ids.shape == (0,)


def test_empty_input(index: FenceIndex) -> None:
    pi, fi = index.classify(np.array([]), np.array([]))
    assert pi.size == fi.size == 0


def test_mismatched_lengths(index: FenceIndex) -> None:
    with pytest.raises(ValueError):
        index.classify(np.array([1.0, 2.0]), np.array([1.0]))


def test_cannot_instantiate_directly() -> None:
    with pytest.raises(TypeError):
        FenceIndex()


@pytest.mark.parametrize(
    "geom",
    [shapely.Point(1, 1), shapely.LineString([(0, 0), (1, 1)]), shapely.Polygon(), None],
)
def test_rejects_non_polygonal(geom: object) -> None:
    with pytest.raises(ValueError):
        FenceIndex.build([Fence("x", geom)])  # type: ignore[arg-type]


def test_rejects_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        FenceIndex.build([Fence("x", SQUARE), Fence("x", HOLED)])


def test_rejects_bad_region_code() -> None:
    with pytest.raises(ValueError):
        FenceIndex.build([Fence("x", SQUARE, "12345")])


def test_invalid_bowtie_is_repaired() -> None:
    bowtie = Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    assert not bowtie.is_valid
    idx = FenceIndex.build([Fence("bow", bowtie)])
    assert idx.covering_ids(0.2, 1.0) == ["bow"]
    assert idx.covering_ids(1.8, 1.0) == ["bow"]
    assert idx.covering_ids(1.0, 0.2) == []


@pytest.mark.parametrize("buffer_m", [50.0, 200.0, 1000.0])
def test_buffer_grows_by_metres(buffer_m: float) -> None:
    lat0 = 30.0
    idx = FenceIndex.build(
        [Fence("b", shapely.box(110.0, lat0, 110.01, lat0 + 0.01), buffer_m=buffer_m)]
    )
    kx, ky = metres_per_degree(lat0 + 0.005)
    # due east of the east edge
    inside = 110.01 + (buffer_m * 0.98) / kx
    outside = 110.01 + (buffer_m * 1.02) / kx
    assert idx.covering_ids(inside, lat0 + 0.005) == ["b"]
    assert idx.covering_ids(outside, lat0 + 0.005) == []
    # due north of the north edge
    assert idx.covering_ids(110.005, lat0 + 0.01 + buffer_m * 0.98 / ky) == ["b"]
    assert idx.covering_ids(110.005, lat0 + 0.01 + buffer_m * 1.02 / ky) == []
    # the indexed geometry edge lies buffer_m (±0.5 %) from the original, by geodesic distance
    g = idx.geometry(0)
    assert g is not None
    xs = shapely.get_coordinates(g)
    east = xs[np.argmax(xs[:, 0])]
    d = geodesic_distance_m(110.01, east[1], east[0], east[1])
    assert d == pytest.approx(buffer_m, rel=0.005)


def test_negative_buffer_shrinks_and_can_vanish() -> None:
    box = shapely.box(110.0, 30.0, 110.01, 30.01)  # about 960 m x 1110 m
    idx = FenceIndex.build([Fence("s", box, buffer_m=-100.0), Fence("gone", box, buffer_m=-5000.0)])
    assert idx.covering_ids(110.0005, 30.005) == []  # within 100 m of the west edge
    assert idx.covering_ids(110.005, 30.005) == ["s"]
    assert idx.geometry(1) is None
    assert len(idx) == 2


def test_non_finite_buffer_rejected() -> None:
    with pytest.raises(ValueError):
        FenceIndex.build([Fence("x", SQUARE, buffer_m=float("nan"))])


def test_large_and_small_fences_together() -> None:
    """A province-sized fence lands on a coarser grid level than site-sized ones."""
    fences = [
        Fence(f"s{i}", shapely.box(100 + i * 0.1, 30, 100 + i * 0.1 + 0.005, 30.005))
        for i in range(50)
    ]
    fences.append(Fence("big", shapely.box(90, 20, 120, 45)))
    idx = FenceIndex.build(fences)
    assert idx.covering_ids(100.0025, 30.0025) == ["s0", "big"]
    assert idx.covering_ids(95.0, 25.0) == ["big"]
    assert idx.covering_ids(120.0, 45.0) == ["big"]
    assert idx.covering_ids(120.0000001, 45.0) == []


def _random_polygon(rng: np.random.Generator) -> Polygon | MultiPolygon:
    kind = rng.integers(0, 3)
    cx, cy = rng.uniform(100, 101), rng.uniform(30, 31)
    if kind == 0:  # star-shaped, many vertices
        n = int(rng.integers(3, 40))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = rng.uniform(0.01, 0.2, n)
        return Polygon(np.column_stack([cx + r * np.cos(ang), cy + r * np.sin(ang)]))
    if kind == 1:  # with a hole
        rad = float(rng.uniform(0.05, 0.2))
        return shapely.Point(cx, cy).buffer(rad).difference(shapely.Point(cx, cy).buffer(rad / 2))
    a = shapely.box(cx, cy, cx + 0.05, cy + 0.05)
    return MultiPolygon([a, shapely.box(cx + 0.1, cy, cx + 0.15, cy + 0.1)])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([None, 0.001, 0.01, 0.3]))
def test_matches_brute_force_shapely_covers(seed: int, cell: float | None) -> None:
    rng = np.random.default_rng(seed)
    geoms = [_random_polygon(rng) for _ in range(int(rng.integers(1, 8)))]
    geoms = [g if g.is_valid else shapely.make_valid(g) for g in geoms]
    geoms = [g for g in geoms if g.geom_type in ("Polygon", "MultiPolygon")]
    if not geoms:
        return
    idx = FenceIndex.build([Fence(str(i), g) for i, g in enumerate(geoms)], cell_deg=cell)
    # random points plus every vertex and some edge points of every polygon
    verts = np.vstack([shapely.get_coordinates(g) for g in geoms])
    pts = np.vstack(
        [
            np.column_stack([rng.uniform(99.7, 101.5, 400), rng.uniform(29.7, 31.4, 400)]),
            verts,
            (verts[:-1] + verts[1:]) / 2,
        ]
    )
    pi, fi = idx.classify(pts[:, 0], pts[:, 1])
    shp = shapely.points(pts[:, 0], pts[:, 1])
    exp = np.array(
        [[i, j] for j, g in enumerate(geoms) for i in np.flatnonzero(shapely.covers(g, shp))]
    )
    exp = exp[np.lexsort((exp[:, 1], exp[:, 0]))] if exp.size else np.empty((0, 2), dtype=int)
    assert np.array_equal(np.column_stack([pi, fi]), exp)
