"""The project fences and region boundaries a batch is judged against, as one immutable value
(store.fence_cache builds it from PostGIS and swaps it whole when they change)."""

from __future__ import annotations

from dataclasses import dataclass

from geofence.fences import FenceIndex
from geofence.regions import RegionIndex


@dataclass(frozen=True)
class Fences:
    version: int
    projects: FenceIndex
    regions: RegionIndex
    project_region: dict[str, str]
