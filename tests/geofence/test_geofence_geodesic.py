from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.geodesic import geodesic_distance_m, haversine_m, sphere_distance_m
from geofence.tracking import geodesic_distance_m as reexported


def _dms(d: float, m: float, s: float) -> float:
    return d + m / 60 + s / 3600


@pytest.mark.parametrize(
    ("lon1", "lat1", "lon2", "lat2", "expected", "tol"),
    [
        # Vincenty (1975) / Geoscience Australia: Flinders Peak -> Buninyong
        (
            _dms(144, 25, 29.52440),
            -_dms(37, 57, 3.72030),
            _dms(143, 55, 35.38390),
            -_dms(37, 39, 10.15610),
            54972.271,
            0.001,
        ),
        # one degree of longitude on the equator = a * pi / 180
        (0.0, 0.0, 1.0, 0.0, 6378137.0 * math.pi / 180, 0.001),
        # equator to pole = WGS-84 quarter meridian
        (0.0, 0.0, 0.0, 90.0, 10001965.7293, 0.001),
        # Karney (2013) example where Vincenty converges slowly
        (0.0, 0.0, 179.5, 0.5, 19936288.579, 0.01),
        (10.0, 20.0, 10.0, 20.0, 0.0, 1e-9),
    ],
)
def test_reference_distances(
    lon1: float, lat1: float, lon2: float, lat2: float, expected: float, tol: float
) -> None:
    assert geodesic_distance_m(lon1, lat1, lon2, lat2) == pytest.approx(expected, abs=tol)


def test_antipodal_falls_back_gracefully() -> None:
    d = geodesic_distance_m(0.0, 0.0, 180.0, 0.0)
    assert d == pytest.approx(20003931.4586, rel=0.005)
    d2 = geodesic_distance_m(10.0, 30.0, -170.0, -30.0)
    assert math.isfinite(d2) and d2 == pytest.approx(20003931.4586, rel=0.005)


def test_vectorised_and_nan() -> None:
    d = geodesic_distance_m(np.array([0.0, 0.0, np.nan]), 0.0, np.array([1.0, 0.0, 1.0]), 0.0)
    assert d.shape == (3,)
    assert d[0] == pytest.approx(111319.49, abs=0.01) and d[1] == 0.0 and math.isnan(d[2])
    assert isinstance(geodesic_distance_m(0, 0, 1, 1), float)
    assert reexported is geodesic_distance_m


@settings(max_examples=200, deadline=None)
@given(st.floats(73, 135), st.floats(18, 53), st.floats(73, 135), st.floats(18, 53))
def test_close_to_sphere_and_symmetric(lon1: float, lat1: float, lon2: float, lat2: float) -> None:
    d = geodesic_distance_m(lon1, lat1, lon2, lat2)
    assert d == pytest.approx(geodesic_distance_m(lon2, lat2, lon1, lat1), abs=1e-6)
    assert d == pytest.approx(haversine_m(lon1, lat1, lon2, lat2), rel=0.006, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180), st.floats(-90, 90))
def test_scalar_sphere_distance_is_the_vectorised_one(
    lon1: float, lat1: float, lon2: float, lat2: float
) -> None:
    assert sphere_distance_m(lon1, lat1, lon2, lat2) == pytest.approx(
        haversine_m(lon1, lat1, lon2, lat2), rel=1e-9, abs=1e-6
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_scalar_sphere_distance_of_a_non_finite_coordinate_is_nan(bad: float) -> None:
    for args in ((bad, 0, 1, 1), (0, bad, 1, 1), (0, 0, bad, 1), (0, 0, 1, bad)):
        assert math.isnan(sphere_distance_m(*args))


def test_scalar_sphere_distance_of_an_overflowing_difference_is_nan() -> None:
    assert math.isnan(sphere_distance_m(-1e308, 0, 1e308, 0))  # lon2 - lon1 is infinite
