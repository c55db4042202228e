from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    geometry_to_wgs84,
    out_of_china,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geofence.geodesic import geodesic_distance_m

# Reference vectors published in wandergis/coordtransform's README (Tiananmen, 116.404, 39.915)
REF_IN = (116.404, 39.915)
REF_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
REF_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)
REF_WGS_TO_BD = (116.41662724378733, 39.922699552216216)
# the same README's *approximate* inverses (one-step); ours must be within a few metres
REF_BD_TO_GCJ_APPROX = (116.39762729119315, 39.90865673957631)
REF_GCJ_TO_WGS_APPROX = (116.39775550083061, 39.91359571849836)

lons = st.floats(73.0, 135.0)
lats = st.floats(18.0, 53.0)


def test_published_forward_vectors() -> None:
    assert wgs84_to_gcj02(*REF_IN) == pytest.approx(REF_WGS_TO_GCJ, abs=1e-12)
    assert gcj02_to_bd09(*REF_IN) == pytest.approx(REF_GCJ_TO_BD, abs=1e-12)
    assert wgs84_to_bd09(*REF_IN) == pytest.approx(REF_WGS_TO_BD, abs=1e-12)


def test_inverse_close_to_published_approximations() -> None:
    for got, ref in (
        (gcj02_to_wgs84(*REF_IN), REF_GCJ_TO_WGS_APPROX),
        (bd09_to_gcj02(*REF_IN), REF_BD_TO_GCJ_APPROX),
    ):
        assert geodesic_distance_m(got[0], got[1], ref[0], ref[1]) < 5.0


def test_inverse_recovers_published_pair_exactly() -> None:
    lon, lat = gcj02_to_wgs84(*REF_WGS_TO_GCJ)
    assert geodesic_distance_m(lon, lat, *REF_IN) < 0.001
    lon, lat = bd09_to_wgs84(*REF_WGS_TO_BD)
    assert geodesic_distance_m(lon, lat, *REF_IN) < 0.001


def test_offset_is_hundreds_of_metres_in_china() -> None:
    g = wgs84_to_gcj02(*REF_IN)
    assert 100 < geodesic_distance_m(*REF_IN, *g) < 1000


def test_scalar_in_scalar_out_array_in_array_out() -> None:
    lon, lat = wgs84_to_gcj02(116.4, 39.9)
    assert isinstance(lon, float) and isinstance(lat, float)
    arr = wgs84_to_gcj02(np.array([116.4, 121.5]), np.array([39.9, 31.2]))
    assert isinstance(arr[0], np.ndarray) and arr[0].shape == (2,)
    # broadcasting a scalar against an array
    x, y = gcj02_to_wgs84(np.array([116.4, 116.5]), 39.9)
    assert x.shape == y.shape == (2,)


@pytest.mark.parametrize(
    ("lon", "lat"),
    [(0.0, 0.0), (-122.4, 37.8), (139.7, 35.7), (2.35, 48.85), (72.0, 30.0), (120.0, 56.0)],
)
def test_identity_outside_china(lon: float, lat: float) -> None:
    assert out_of_china(lon, lat)
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == (lon, lat)
    assert to_wgs84(lon, lat, "gcj02") == (lon, lat)


def test_bd09_applies_everywhere() -> None:
    # Baidu's transform is not gated by the China box
    x, y = wgs84_to_bd09(0.0, 0.0)
    assert (x, y) != (0.0, 0.0)
    assert bd09_to_wgs84(x, y) == pytest.approx((0.0, 0.0), abs=1e-9)


def test_nan_propagates() -> None:
    x, y = gcj02_to_wgs84(np.array([np.nan, 116.4]), np.array([39.9, 39.9]))
    assert math.isnan(x[0]) and not math.isnan(x[1])


@pytest.mark.parametrize("crs", ["wgs84", "WGS84", "gcj02", "GCJ02", " bd09 ", "Bd09"])
def test_to_wgs84_names(crs: str) -> None:
    x, y = to_wgs84(116.4, 39.9, crs)
    assert abs(x - 116.4) < 0.02 and abs(y - 39.9) < 0.02


@pytest.mark.parametrize("crs", ["", "epsg:4326", "gcj-02", "bd-09", "wgs 84", "mercator"])
def test_to_wgs84_rejects_unknown(crs: str) -> None:
    with pytest.raises(ValueError):
        to_wgs84(116.4, 39.9, crs)
    with pytest.raises(ValueError):
        geometry_to_wgs84(shapely.Point(116.4, 39.9), crs)


def test_geometry_to_wgs84() -> None:
    poly = shapely.box(116.40, 39.90, 116.41, 39.91)
    assert geometry_to_wgs84(poly, "wgs84") is poly
    g = geometry_to_wgs84(poly, "gcj02")
    assert g.geom_type == "Polygon" and g.is_valid
    src = shapely.get_coordinates(poly)
    ex, ey = gcj02_to_wgs84(src[:, 0], src[:, 1])
    assert shapely.get_coordinates(g) == pytest.approx(np.column_stack([ex, ey]))
    mp = shapely.MultiPolygon([poly, shapely.box(116.5, 39.9, 116.51, 39.91)])
    assert geometry_to_wgs84(mp, "bd09").geom_type == "MultiPolygon"


@settings(max_examples=300, deadline=None)
@given(lons, lats)
def test_round_trip_gcj_under_half_metre(lon: float, lat: float) -> None:
    g = wgs84_to_gcj02(lon, lat)
    back = gcj02_to_wgs84(*g)
    assert geodesic_distance_m(lon, lat, *back) < 0.01  # requirement 0.5 m; we do far better


@settings(max_examples=300, deadline=None)
@given(lons, lats)
def test_round_trip_bd_under_half_metre(lon: float, lat: float) -> None:
    b = wgs84_to_bd09(lon, lat)
    back = bd09_to_wgs84(*b)
    assert geodesic_distance_m(lon, lat, *back) < 0.01


def test_round_trip_vectorised_grid() -> None:
    glon, glat = np.meshgrid(np.linspace(73, 135, 200), np.linspace(18, 53, 100))
    lon, lat = glon.ravel(), glat.ravel()
    for fwd, crs in ((wgs84_to_gcj02, "gcj02"), (wgs84_to_bd09, "bd09")):
        x, y = to_wgs84(*fwd(lon, lat), crs)
        err = geodesic_distance_m(lon, lat, x, y)
        assert float(np.max(err)) < 0.01
