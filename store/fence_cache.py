"""Project fences and region boundaries from PostGIS, rebuilt only when they change.

Every batch asks for the newest change id (one cheap query); the immutable indexes are
rebuilt and swapped in one assignment when it moved, never per fix.
"""

from __future__ import annotations

import logging

import shapely
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from geofence.fences import Fence, FenceIndex
from geofence.regions import Region as RegionShape
from geofence.regions import RegionIndex
from rules.fences import Fences
from store.models import ChangeLog, Project, Region

log = logging.getLogger("sitewatch.store")


FENCE_KINDS = ("projects", "regions")  # the changes that move a fence


class FenceCache:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._current: Fences | None = None

    async def current(self) -> Fences:
        async with self._engine.connect() as conn:
            version = int(
                (
                    await conn.execute(
                        select(func.coalesce(func.max(ChangeLog.id), 0)).where(
                            ChangeLog.kind.in_(FENCE_KINDS)
                        )
                    )
                ).scalar_one()
            )
            if self._current is not None and self._current.version == version:
                return self._current
            projects = (
                await conn.execute(
                    select(
                        Project.id,
                        Project.region_code,
                        Project.buffer_m,
                        func.ST_AsBinary(Project.geom),
                    )
                )
            ).all()
            regions = (
                await conn.execute(select(Region.code, Region.name, func.ST_AsBinary(Region.geom)))
            ).all()
        fences = [Fence(p[0], shapely.from_wkb(p[3]), p[1], p[2] or 0.0) for p in projects]
        shapes = [RegionShape(r[0], r[1], shapely.from_wkb(r[2])) for r in regions]
        self._current = Fences(
            version,
            FenceIndex.build(fences),
            RegionIndex.build(shapes),
            {p[0]: p[1] for p in projects},
        )
        log.info(
            "fence index rebuilt: %d projects, %d regions (version %d)",
            len(fences),
            len(shapes),
            version,
        )
        return self._current
