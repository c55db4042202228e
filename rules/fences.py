"""The project fences and region boundaries a batch is judged against, as one immutable value
(store.fence_cache builds it from PostGIS and swaps it whole when they change)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from geofence.fences import FenceIndex
from geofence.regions import RegionIndex


@dataclass(frozen=True)
class Revision:
    """One boundary of a project that was revised (CONTRACT §6.3): it judges the fixes whose
    event time is in [valid_from, valid_to), epoch seconds."""

    project_id: str
    valid_from: float = -math.inf
    valid_to: float = math.inf


@dataclass(frozen=True)
class Fences:
    version: int
    projects: FenceIndex
    regions: RegionIndex
    project_region: dict[str, str]
    # fence id -> its project and time window, for the fences of revised boundaries (their
    # ids are `project/n`: ids cannot hold a '/'); any other fence is its project's only boundary, for all time
    revisions: Mapping[str, Revision] = field(default_factory=dict)

    def projects_covering(self, lon: float, lat: float, ts: float) -> set[str]:
        """The projects whose boundary at event time `ts` covers the point."""
        _points, fence_idx = self.projects.classify(np.array([lon]), np.array([lat]))
        found = (self.project_at(int(i), ts) for i in fence_idx.tolist())
        return {p for p in found if p is not None}

    def project_at(self, fence: int, ts: float) -> str | None:
        """The project fence number `fence` stands for at event time `ts`, or None when that
        boundary did not apply then."""
        fence_id = str(self.projects.ids[fence])
        revision = self.revisions.get(fence_id)
        if revision is None:
            return fence_id
        return revision.project_id if revision.valid_from <= ts < revision.valid_to else None


Shape = TypeVar("Shape")


def boundary_spans(steps: Sequence[tuple[float, Shape]]) -> list[tuple[float, float, Shape]]:
    """A revised project's boundaries as (valid_from, valid_to, shape), from its steps
    (effective_from, shape) ordered by effective time, then by when they were recorded. Each
    applies until the next; one replaced by a step recorded later for the same time is gone."""
    spans = []
    for n, (start, shape) in enumerate(steps):
        end = steps[n + 1][0] if n + 1 < len(steps) else math.inf
        if end > start:
            spans.append((start, end, shape))
    return spans
