"""Changing and retiring projects (CONTRACT §6.3): `PATCH` with `If-Match`, boundary revisions
that apply from their effective time, `DELETE` that keeps history, each project's changes and
its assignment history (who was chief or member from when to when).

A new boundary judges the fixes whose event time is at or after `geometry_from`; fixes
already stored keep their result, and a fix that arrives late for an earlier time is judged
by the boundary of its time (store.fence_cache, rules.fences.Revision). A suspended or
retired project has no fence: it raises no new attendance (CONTRACT §6.5)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from geoalchemy2.shape import to_shape
from pydantic import BaseModel, ConfigDict, Field, model_validator
from shapely.geometry import mapping
from sqlalchemy import func, insert, select, update

from live_api import audit, schemas
from live_api.deps import Admin, Conn, CurrentCaller, unknown
from live_api.routes.projects import (
    _may_see_project,
    _vendor_projects,
    feature_of,
    parse_site,
    project_etag,
)
from live_api.routes.registry import change_history, check_if_match, retire
from rules.fences import boundary_spans
from store.models import AuditEntry, ChangeLog, Engineer, Project, ProjectBoundary

router = APIRouter(prefix="/api")
FAR_PAST = dt.datetime(1, 1, 1, tzinfo=dt.UTC)  # stored as -infinity: the first boundary


class ProjectPatch(BaseModel):
    """Any of these fields (CONTRACT §6.3); null clears chief_engineer_id or
    required_days_per_month."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "active", "chief_engineer_id": "E-1001"}]},
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["planned", "active", "suspended", "completed"] | None = None
    chief_engineer_id: schemas.Id | None = None
    engineer_ids: list[schemas.Id] | None = Field(default=None, max_length=500)
    required_days_per_month: int | None = Field(default=None, ge=0, le=31)
    geometry: dict[str, Any] | None = Field(
        default=None, description="GeoJSON Polygon or MultiPolygon, WGS-84 lon/lat"
    )
    geometry_from: dt.datetime | None = Field(
        default=None, description="when the new boundary applies from (default: now)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ProjectPatch:
        for name in ("name", "status", "engineer_ids", "geometry"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        if self.geometry_from is not None:
            if self.geometry is None:
                raise ValueError("geometry_from needs a geometry")
            if self.geometry_from.tzinfo is None:
                raise ValueError("geometry_from needs a time zone (e.g. +08:00 or Z)")
            if (
                not dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
                <= self.geometry_from
                <= dt.datetime(2100, 12, 31, tzinfo=dt.UTC)
            ):
                raise ValueError("geometry_from is outside 1990..2100")
        return self


async def visible_project(
    conn: Any, caller: Any, project_id: str, *, for_update: bool = False
) -> Any:
    query = select(Project).where(Project.id == project_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise unknown(caller, "project", project_id)
    if not _may_see_project(caller, row, await _vendor_projects(conn, caller)):
        raise HTTPException(403, f"project {project_id!r} is outside your region or role")
    return row


def _shown(row: Any) -> dict[str, Any]:
    props = feature_of(row)["properties"]
    return {
        "name": props["name"],
        "status": props.get("status"),
        "chief_engineer_id": props["chief_engineer_id"],
        "engineer_ids": props["engineer_ids"],
        "required_days_per_month": props["required_days_per_month"],
        "retired_at": row.retired_at.isoformat() if row.retired_at else None,
    }


@router.patch("/projects/{project_id}", response_model=schemas.ProjectFeature, tags=["projects"])
async def patch_project(
    project_id: str,
    body: ProjectPatch,
    request: Request,
    response: Response,
    conn: Conn,
    admin: Admin,
) -> dict[str, Any]:
    """Admin only. Any of the fields; with `If-Match` (the ETag of a `GET`), 412 when the
    project changed since. A `geometry` applies from `geometry_from` (default now)."""
    row = await visible_project(conn, admin, project_id, for_update=True)
    check_if_match(request, "project", project_id, project_etag(row))
    given = body.model_dump(exclude_unset=True)
    people = [*(given.get("engineer_ids") or []), given.get("chief_engineer_id")]
    wanted = {e for e in people if e}
    if wanted:
        found = {
            e for (e,) in await conn.execute(select(Engineer.id).where(Engineer.id.in_(wanted)))
        }
        if wanted - found:
            raise HTTPException(422, f"no engineers {sorted(wanted - found)}: register them first")
    values: dict[str, Any] = {
        k: given[k]
        for k in ("name", "chief_engineer_id", "engineer_ids", "required_days_per_month")
        if k in given
    }
    if "status" in given:
        values["properties"] = {**(row.properties or {}), "status": given["status"]}
    boundary: dict[str, Any] = {}
    if "geometry" in given:
        _props, geom = parse_site(
            {
                "type": "Feature",
                "properties": {"id": project_id, "crs": "wgs84"},
                "geometry": body.geometry,
            }
        )
        start = body.geometry_from or dt.datetime.now(dt.UTC)
        revised = await conn.execute(
            select(ProjectBoundary.id).where(ProjectBoundary.project_id == project_id).limit(1)
        )
        if revised.first() is None:  # the boundary so far applies to everything before
            await conn.execute(
                insert(ProjectBoundary).values(
                    project_id=project_id, geom=row.geom, effective_from=FAR_PAST, actor=admin.name
                )
            )
        await conn.execute(
            insert(ProjectBoundary).values(
                project_id=project_id,
                geom="SRID=4326;" + geom.wkt,
                effective_from=start,
                actor=admin.name,
            )
        )
        latest = (
            await conn.execute(
                select(ProjectBoundary.geom)
                .where(ProjectBoundary.project_id == project_id)
                .order_by(ProjectBoundary.effective_from.desc(), ProjectBoundary.id.desc())
                .limit(1)
            )
        ).scalar_one()
        values["geom"] = latest
        boundary = {"geometry_from": start.isoformat(), "area_deg2": round(geom.area, 9)}
    if values:
        await conn.execute(update(Project).where(Project.id == project_id).values(**values))
    after = (await conn.execute(select(Project).where(Project.id == project_id))).one()
    before_shown, after_shown = _shown(row), _shown(after)
    changes = {k: [before_shown[k], v] for k, v in after_shown.items() if before_shown[k] != v}
    if boundary:
        changes["boundary"] = [None, boundary]
    if changes:
        await conn.execute(insert(ChangeLog).values(kind="projects"))
        await audit.record(conn, admin, "project.update", f"project:{project_id}", changes=changes)
    response.headers["ETag"] = project_etag(after)
    return feature_of(after)


@router.delete("/projects/{project_id}", status_code=204, tags=["projects"])
async def retire_project(project_id: str, request: Request, conn: Conn, admin: Admin) -> Response:
    """Admin only. Retired, kept for history: its fixes, attendance and alerts stay readable;
    it has no fence from now on. Retiring again changes nothing."""
    row = await visible_project(conn, admin, project_id, for_update=True)
    check_if_match(request, "project", project_id, project_etag(row))
    if await retire(conn, Project, project_id):
        await conn.execute(insert(ChangeLog).values(kind="projects"))
        await audit.record(conn, admin, "project.retire", f"project:{project_id}")
    return Response(status_code=204)


@router.get(
    "/projects/{project_id}/changes", response_model=list[schemas.Change], tags=["projects"]
)
async def project_changes(
    project_id: str, conn: Conn, caller: CurrentCaller
) -> list[schemas.Change]:
    """Who changed what and when, oldest first."""
    await visible_project(conn, caller, project_id)
    return await change_history(conn, "project", project_id)


class Assignment(BaseModel):
    engineer_id: str
    role: Literal["chief", "member"]
    start: dt.datetime = Field(description="assigned at")
    end: dt.datetime | None = Field(description="unassigned at; null while assigned")


@router.get(
    "/projects/{project_id}/assignments", response_model=list[Assignment], tags=["projects"]
)
async def project_assignments(
    project_id: str, conn: Conn, caller: CurrentCaller
) -> list[Assignment]:
    """Who was chief or member from when to when, from the project's registration and its
    changes (the times they were recorded)."""
    row = await visible_project(conn, caller, project_id)
    entries = await conn.execute(
        select(AuditEntry)
        .where(
            AuditEntry.target == f"project:{project_id}",
            AuditEntry.action.in_(["project.create", "project.update"]),
        )
        .order_by(AuditEntry.id)
    )
    open_: dict[tuple[str, str], dt.datetime] = {}
    out: list[Assignment] = []

    def assign(role: str, people: set[str], at: dt.datetime) -> None:
        for key in [k for k in open_ if k[1] == role and k[0] not in people]:
            out.append(Assignment(engineer_id=key[0], role=role, start=open_.pop(key), end=at))  # type: ignore[arg-type]
        for person in people:
            open_.setdefault((person, role), at)

    seen_create = False
    for entry in entries:
        details = entry.details or {}
        if entry.action == "project.create":
            seen_create = True
            assign(
                "chief",
                {details["chief_engineer_id"]} if details.get("chief_engineer_id") else set(),
                entry.at,
            )
            assign("member", set(details.get("engineer_ids") or []), entry.at)
            continue
        changes = details.get("changes", {})
        if "chief_engineer_id" in changes:
            chief = changes["chief_engineer_id"][1]
            assign("chief", {chief} if chief else set(), entry.at)
        if "engineer_ids" in changes:
            assign("member", set(changes["engineer_ids"][1] or []), entry.at)
    if not seen_create:  # registered before the audit log: as it is, since its registration
        assign("chief", {row.chief_engineer_id} if row.chief_engineer_id else set(), row.created_at)
        assign("member", set(row.engineer_ids or []), row.created_at)
    out.extend(
        Assignment(engineer_id=e, role=r, start=at, end=None) for (e, r), at in open_.items()
    )  # type: ignore[arg-type]
    return sorted(out, key=lambda a: (a.start, a.role, a.engineer_id))


class Boundary(BaseModel):
    valid_from: dt.datetime | None = Field(description="applies from; null: since always")
    valid_to: dt.datetime | None = Field(
        description="applies until, exclusive (the next one's valid_from); null: still applies"
    )
    geometry: dict[str, Any] = Field(description="GeoJSON MultiPolygon, WGS-84 lon/lat")


@router.get("/projects/{project_id}/boundaries", response_model=list[Boundary], tags=["projects"])
async def project_boundaries(project_id: str, conn: Conn, caller: CurrentCaller) -> list[Boundary]:
    """Which boundary judged the fixes of which time, oldest first (CONTRACT §6.3): one
    entry for all time until the boundary is first revised."""
    row = await visible_project(conn, caller, project_id)
    steps = (
        await conn.execute(
            select(func.extract("epoch", ProjectBoundary.effective_from), ProjectBoundary.geom)
            .where(ProjectBoundary.project_id == project_id)
            .order_by(ProjectBoundary.effective_from, ProjectBoundary.id)
        )
    ).all()
    spans = boundary_spans([(float(t), g) for t, g in steps]) or [
        (float("-inf"), float("inf"), row.geom)
    ]
    return [
        Boundary(valid_from=_time(a), valid_to=_time(b), geometry=mapping(to_shape(g)))
        for a, b, g in spans
    ]


def _time(epoch: float) -> dt.datetime | None:
    if not math.isfinite(epoch):  # the first boundary is stored from -infinity
        return None
    return dt.datetime.fromtimestamp(min(max(epoch, MIN_EPOCH), MAX_EPOCH), dt.UTC)


MIN_EPOCH = dt.datetime(1, 1, 2, tzinfo=dt.UTC).timestamp()  # what a datetime can hold
MAX_EPOCH = dt.datetime(9999, 12, 30, tzinfo=dt.UTC).timestamp()
