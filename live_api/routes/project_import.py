"""Bulk import of projects (CONTRACT §6.3): one row per project, registered as
`POST /api/projects` would (live_api.routes.projects.add_project), each in its own savepoint so
a bad row costs only itself. Shared parts: live_api.routes.imports."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import shapely.geometry
import shapely.wkt
from fastapi import APIRouter, HTTPException, Query, Request
from geoalchemy2.shape import to_shape
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from geofence.codes import normalise_code
from live_api import schemas
from live_api.deps import Admin, Conn
from live_api.routes.imports import IMPORT_BODY, ImportOut, RowError, _parse, _table, in_array
from live_api.routes.projects import add_project, parse_site
from store.models import Project

router = APIRouter(prefix="/api")
MAX_GEOMETRY_TEXT = 9000  # characters of a boundary in one cell (table_files.MAX_CELL)


class ProjectRow(BaseModel):
    """A project as a row: the properties of `POST /api/projects`, `engineer_ids` separated by
    commas, semicolons or spaces, and the boundary as WKT or GeoJSON text in `geometry`."""

    model_config = ConfigDict(extra="forbid")
    id: schemas.Id
    name: str | None = Field(default=None, min_length=1, max_length=200)
    region_code: str | None = Field(default=None, max_length=12)
    crs: Literal["wgs84", "gcj02", "bd09"] | None = None
    chief_engineer_id: schemas.Id | None = None
    engineer_ids: str | None = Field(default=None, max_length=5000)
    required_days_per_month: int | None = Field(default=None, ge=0, le=31)
    buffer_m: float | None = Field(default=None, ge=0, le=5000, allow_inf_nan=False)
    geometry: str = Field(min_length=1, max_length=MAX_GEOMETRY_TEXT)

    def feature(self) -> dict[str, Any]:
        text_ = self.geometry.strip()
        if text_.startswith("{"):
            try:
                geometry = json.loads(text_)
            except (ValueError, RecursionError) as exc:
                raise HTTPException(422, f"geometry is not GeoJSON: {exc}") from exc
        else:
            try:
                geometry = shapely.geometry.mapping(shapely.wkt.loads(text_))
            except Exception as exc:  # shapely raises several kinds for bad WKT
                raise HTTPException(422, f"geometry is not WKT: {exc}") from exc
            geometry = json.loads(json.dumps(geometry))  # tuples -> lists, as GeoJSON
        props = self.model_dump(exclude_none=True, exclude={"geometry", "engineer_ids"})
        if self.engineer_ids:
            props["engineer_ids"] = [e for e in re.split(r"[,;\s]+", self.engineer_ids) if e]
        return {"type": "Feature", "properties": props, "geometry": geometry}


def _same_project(row: ProjectRow, current: Any, feature: dict[str, Any]) -> bool:
    props = dict(feature["properties"])
    if "region_code" in props:
        try:
            props["region_code"] = normalise_code(props["region_code"])
        except (ValueError, TypeError):
            return False
    fields = {
        "name": current.name,
        "chief_engineer_id": current.chief_engineer_id,
        "required_days_per_month": current.required_days_per_month,
        "region_code": current.region_code,
        "crs": current.crs,
        "buffer_m": current.buffer_m,
    }
    if any(k in props and props[k] != v for k, v in fields.items()):
        return False
    if "engineer_ids" in props and props["engineer_ids"] != list(current.engineer_ids or []):
        return False
    _props, geom = parse_site(feature)
    return bool(to_shape(current.geom).equals(geom))


@router.post(
    "/import/projects", response_model=ImportOut, tags=["registry"], openapi_extra=IMPORT_BODY
)
async def import_projects(
    request: Request,
    conn: Conn,
    admin: Admin,
    dry_run: bool = Query(default=False, description="check and count, write nothing"),
) -> ImportOut:
    """Admin only. CSV or XLSX, one project per row (see `ProjectRow`). A project already
    registered with the same fields and boundary is left alone; one that differs is an error
    of its row (change it with `PATCH /api/projects/{id}`: a boundary revision has a time it
    applies from, which a table row does not say)."""
    table = await _table(request, ProjectRow)
    rows, errors = _parse(table, ProjectRow)
    existing = {
        r.id.lower(): r
        for r in await conn.execute(
            select(Project).where(in_array(func.lower(Project.id), [r.id.lower() for _, r in rows]))
        )
    }
    created = unchanged = 0
    seen: set[str] = set()
    for number, row in rows:
        try:
            if row.id.lower() in seen:
                raise HTTPException(422, f"id {row.id!r} is also on an earlier row")
            seen.add(row.id.lower())
            feature = row.feature()
            current = existing.get(row.id.lower())
            if current is not None:
                if not _same_project(row, current, feature):
                    raise HTTPException(
                        409,
                        f"project {current.id!r} exists with other values: change it with "
                        f"PATCH /api/projects/{current.id}",
                    )
                unchanged += 1
                continue
            savepoint = await conn.begin_nested()
            try:
                await add_project(request, conn, admin, feature)
            except BaseException:
                await savepoint.rollback()
                raise
            if dry_run:
                await savepoint.rollback()
            else:
                await savepoint.commit()
            created += 1
        except HTTPException as exc:
            errors.append(RowError(row=number, field=None, message=str(exc.detail)))
    errors.sort(key=lambda e: e.row)
    return ImportOut(
        dry_run=dry_run,
        rows=len(table.rows),
        created=created,
        updated=0,
        unchanged=unchanged,
        errors=errors,
    )
