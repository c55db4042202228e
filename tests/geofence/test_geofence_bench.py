from __future__ import annotations

import shapely

from geofence.regions import Region
from measure.geofence_bench import fixes_per_second, random_fences


def test_bench_small_run_returns_figures() -> None:
    districts = [
        Region("440305", "南山区", shapely.box(73, 18, 104, 53)),
        Region("440306", "宝安区", shapely.box(104, 18, 135, 53)),
    ]
    res = fixes_per_second(n_fences=200, n_fixes=20_000, districts=districts, repeat=1)
    for key in (
        "geofence_fixes_per_s",
        "classify_fixes_per_s",
        "locate_fixes_per_s",
        "classify_locate_fixes_per_s",
    ):
        assert res[key] > 0
    assert res["n_fences"] == 200 and res["n_fixes"] == 20_000 and res["n_regions"] == 2
    assert 0.1 < res["on_site_fraction"] < 0.6
    assert res["located_fraction"] == 1.0


def test_bench_without_districts() -> None:
    res = fixes_per_second(n_fences=50, n_fixes=1000, repeat=1)
    assert res["locate_fixes_per_s"] is None and res["geofence_fixes_per_s"] > 0


def test_random_fences_deterministic() -> None:
    a = random_fences(5, seed=3)
    b = random_fences(5, seed=3)
    assert [f.geometry.wkb for f in a] == [f.geometry.wkb for f in b]
