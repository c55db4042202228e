"""A revised project boundary judges only the fixes of its time (CONTRACT §6.3): pure, with
hand-computed expectations (rules.fences.Revision, rules.engineer_batch)."""

from __future__ import annotations

import math

import shapely

from config.settings import Settings
from geofence.fences import Fence, FenceIndex
from geofence.regions import RegionIndex
from rules.engineer_batch import EngineerFacts, process_engineer_batch
from rules.fences import Fences, Revision, boundary_spans
from tests.streams.test_streams_rules import LAT, LON, fix, local

D = 0.001
MOVED = 0.01  # the new boundary is about a kilometre east of the old one
T = local(12)  # the revision applies from noon


def revised() -> Fences:
    old = Fence("P1/0", shapely.box(LON - D, LAT - D, LON + D, LAT + D), "440305")
    new = Fence("P1/1", shapely.box(LON + MOVED - D, LAT - D, LON + MOVED + D, LAT + D), "440305")
    idx = FenceIndex.build([old, new])
    return Fences(
        1,
        idx,
        RegionIndex.build([]),
        {"P1": "440305"},
        {"P1/0": Revision("P1", -math.inf, T), "P1/1": Revision("P1", T, math.inf)},
    )


def test_each_boundary_judges_the_fixes_of_its_own_time() -> None:
    out = process_engineer_batch(
        [
            fix("old-before", local(11, 59)),
            fix("old-after", T),  # at the revision's own instant: the new boundary applies
            fix("new-before", local(11, 58), lon=LON + MOVED),
            fix("new-after", local(12, 1), lon=LON + MOVED),
        ],
        fences=revised(),
        states={},
        facts={"E1": EngineerFacts("440305", ())},
        settings=Settings(),
    )
    on_site = {r["msg_id"]: r["project_ids"] for r in out.fixes}
    assert on_site == {
        "old-before": ["P1"],
        "old-after": [],
        "new-before": [],
        "new-after": ["P1"],
    }
    assert revised().project_at(0, T - 1) == "P1" and revised().project_at(0, T) is None


def test_boundary_spans_end_each_boundary_at_the_next_and_drop_a_replaced_one() -> None:
    steps = [(-math.inf, "first"), (100.0, "replaced"), (100.0, "second"), (200.0, "third")]
    assert boundary_spans(steps) == [
        (-math.inf, 100.0, "first"),
        (100.0, 200.0, "second"),
        (200.0, math.inf, "third"),
    ]
    assert boundary_spans([]) == []
