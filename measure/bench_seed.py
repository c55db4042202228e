"""The bench's registry: project squares on real Guangdong districts and engineers, by COPY
(measure.bench, measure.writer_bench)."""

from __future__ import annotations

from measure.bench_probes import Signing

ENGINEER_PREFIX = "BE"  # the seeded engineers are BE00000, BE00001, ...


def seed(database_url: str, projects: int, engineers: int) -> tuple[float, float, list[str]]:
    """10k project squares on real Guangdong districts and 20k engineers, by COPY."""
    import random

    import psycopg

    rng = random.Random(1)
    with psycopg.connect(database_url) as conn:
        districts = conn.execute("SELECT count(*) FROM regions").fetchone()
        _ = districts
        with conn.cursor().copy(
            "COPY projects (id, name, region_code, crs, engineer_ids, buffer_m, properties, geom) FROM STDIN"
        ) as copy:
            for i in range(projects):
                lon, lat = rng.uniform(113.7, 114.5), rng.uniform(22.45, 22.85)
                d = 0.002
                wkt = f"SRID=4326;MULTIPOLYGON((({lon - d} {lat - d},{lon + d} {lat - d},{lon + d} {lat + d},{lon - d} {lat + d},{lon - d} {lat - d})))"
                copy.write_row(
                    (f"BP{i:05d}", f"bench {i}", "440305", "wgs84", "{}", 0.0, "{}", wkt)
                )
        conn.execute(
            "INSERT INTO projects (id, name, region_code, crs, engineer_ids, buffer_m, properties, geom) VALUES ('BENCH-HOT', 'bench hot site', '440305', 'wgs84', '{}', 0, '{}', ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(113.95, 22.54), 4326), 0.01)))"
        )
        with conn.cursor().copy(
            "COPY engineers (id, name, registered_region, cert_status, ce_hours) FROM STDIN"
        ) as copy:
            for i in range(engineers):
                copy.write_row((f"{ENGINEER_PREFIX}{i:05d}", f"bench {i}", "440305", "valid", 0.0))
        conn.execute("INSERT INTO change_log (kind) VALUES ('projects')")
        conn.commit()
    return 113.95, 22.54, [f"{ENGINEER_PREFIX}{i:05d}" for i in range(engineers)]


def register_keys(database_url: str, signing: Signing) -> None:
    """The public key of the signing engineers, as `POST /api/engineers` would store it."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE engineers SET sm2_public_key = %s WHERE id = ANY(%s)",
            (signing.keys[1], sorted(signing.engineers)),
        )
        conn.commit()
