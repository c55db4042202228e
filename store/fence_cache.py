"""Project fences and region boundaries from PostGIS, rebuilt only when they change.

Every batch asks for the newest change id (one cheap query); the immutable indexes are
rebuilt and swapped in one assignment when it moved, never per fix. Retired and suspended
projects have no fence (CONTRACT §6.5: they raise no new attendance); a project whose
boundary was revised has one fence per boundary, each judging the fixes of its time window
(rules.fences.Revision).
"""

from __future__ import annotations

import logging

import shapely
from sqlalchemy import func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from geofence.fences import Fence, FenceIndex
from geofence.regions import Region as RegionShape
from geofence.regions import RegionIndex
from rules.fences import Fences, Revision, boundary_spans
from store.db import connection
from store.models import Project, ProjectBoundary, Region

log = logging.getLogger("sitewatch.store")


FENCE_KINDS = ("projects", "regions")  # the changes that move a fence
# the newest of those changes (one expression: the worker reads it with the facts' version)
VERSION_SQL = text(
    "SELECT coalesce(max(id), 0) FROM change_log WHERE kind IN "
    + "("
    + ", ".join(f"'{kind}'" for kind in FENCE_KINDS)
    + ")"
)


class FenceCache:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._current: Fences | None = None

    async def current(
        self, conn: AsyncConnection | None = None, version: int | None = None
    ) -> Fences:
        """The fences of the newest change, read on `conn` when given (the worker reads
        everything of a batch on one connection). `version`: the newest change, when the
        caller read it (`store.cache_versions`)."""
        async with connection(self._engine, conn) as conn:
            if version is None:
                version = int((await conn.execute(VERSION_SQL)).scalar_one())
            if self._current is not None and self._current.version == version:
                return self._current
            projects = (
                await conn.execute(
                    select(
                        Project.id,
                        Project.region_code,
                        Project.buffer_m,
                        func.ST_AsBinary(Project.geom),
                    ).where(
                        Project.retired_at.is_(None),
                        or_(
                            Project.properties["status"].astext.is_(None),
                            Project.properties["status"].astext != "suspended",
                        ),
                    )
                )
            ).all()
            boundaries = (
                await conn.execute(
                    select(
                        ProjectBoundary.project_id,
                        func.extract("epoch", ProjectBoundary.effective_from),
                        func.ST_AsBinary(ProjectBoundary.geom),
                    )
                    .join(Project, Project.id == ProjectBoundary.project_id)
                    .where(Project.retired_at.is_(None))
                    .order_by(
                        ProjectBoundary.project_id,
                        ProjectBoundary.effective_from,
                        ProjectBoundary.id,
                    )
                )
            ).all()
            regions = (
                await conn.execute(select(Region.code, Region.name, func.ST_AsBinary(Region.geom)))
            ).all()
        revised: dict[str, list[tuple[float, bytes]]] = {}
        active = {p[0] for p in projects}
        for project_id, effective_from, wkb in boundaries:
            if project_id in active:
                revised.setdefault(project_id, []).append((float(effective_from), wkb))
        fences: list[Fence] = []
        revisions: dict[str, Revision] = {}
        for p in projects:
            if p[0] not in revised:
                fences.append(Fence(p[0], shapely.from_wkb(p[3]), p[1], p[2] or 0.0))
                continue
            for n, (start, end, wkb) in enumerate(boundary_spans(revised[p[0]])):
                fence_id = f"{p[0]}/{n}"  # ids cannot hold '/' (they are MQTT topic levels)
                fences.append(Fence(fence_id, shapely.from_wkb(wkb), p[1], p[2] or 0.0))
                revisions[fence_id] = Revision(p[0], start, end)
        shapes = [RegionShape(r[0], r[1], shapely.from_wkb(r[2])) for r in regions]
        self._current = Fences(
            version,
            FenceIndex.build(fences),
            RegionIndex.build(shapes),
            {p[0]: p[1] for p in projects},
            revisions,
        )
        log.info(
            "fence index rebuilt: %d projects, %d regions (version %d)",
            len(fences),
            len(shapes),
            version,
        )
        return self._current
