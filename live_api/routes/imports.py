"""Bulk import of engineers, projects and filings from CSV or XLSX (CONTRACT §6.3): one row per object,
columns named like the fields of the matching `POST` body (an engineer's employer as
`employer_name` and `employer_credit_code`). Every row is checked as its `POST` would be and
a bad row is reported `{row, field, message}` without stopping the others; `?dry_run=true`
reports without writing. Importing the same file again changes nothing: an engineer whose
row matches the registry is left alone, one that differs is updated (and its change kept
with the import's actor; an empty cell or a missing column leaves that field as it is), a
filing that exists with the same fields is not added twice.

Imported engineers get no MQTT password: `POST /api/engineers/{id}/credentials` issues one
when their phone is set up."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Text, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from gm.algorithms import sm4_decrypt, sm4_encrypt
from live_api import schemas, table_files
from live_api.auth import Caller
from live_api.ce_records import declare_hours
from live_api.deps import Admin, Conn, SettingsDep
from live_api.routes.engineers import _last4, engineer_out
from live_api.routes.registry import RESERVED_PREFIX, _personal_key, registry_changed
from rules.certificate import SINCE_REGISTRATION
from rules.identifiers import credit_code_problem
from store.models import (
    Account,
    AuditEntry,
    CeRecord,
    CertStatusChange,
    Device,
    Engineer,
    Filing,
    Project,
)

router = APIRouter(prefix="/api")


def in_array(expr: Any, values: Iterable[str]) -> Any:
    """`expr = ANY(array)`: one parameter, where `IN (...)` would send one per value (asyncpg
    refuses more than 32,767, and an import may hold 50,000 rows)."""
    return expr == any_(bindparam(None, sorted(values), type_=ARRAY(Text)))


CHUNK = 1000  # rows per INSERT
MAX_GEOMETRY_TEXT = 9000  # characters of a boundary in one cell (table_files.MAX_CELL)


class RowError(BaseModel):
    row: int = Field(description="the row in the file (the header is row 1)")
    field: str | None
    message: str


class ImportOut(BaseModel):
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    errors: list[RowError]


class EngineerRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: schemas.Id
    name: str = Field(min_length=1, max_length=200)
    registered_region: schemas.RegionCode
    cert_status: Literal["valid", "suspended", "expired"]
    cert_number: str | None = Field(default=None, min_length=1, max_length=64)
    cert_valid_to: dt.date | None = None
    employer_name: str | None = Field(default=None, min_length=1, max_length=200)
    employer_credit_code: str | None = Field(default=None, min_length=18, max_length=18)
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    id_number: str | None = Field(default=None, min_length=1, max_length=64)
    ce_hours: float = Field(default=0.0, ge=0, le=10_000, allow_inf_nan=False)

    @field_validator("employer_credit_code")
    @classmethod
    def _credit_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = credit_code_problem(value.upper())
        if problem:
            raise ValueError(problem)
        return value.upper()


PLAIN = (
    "name",
    "registered_region",
    "cert_status",
    "cert_number",
    "cert_valid_to",
    "employer_name",
    "employer_credit_code",
)
PERSONAL = ("phone", "id_number")


def _errors(number: int, exc: ValidationError) -> list[RowError]:
    return [
        RowError(
            row=number,
            field=str(e["loc"][0]) if e["loc"] else None,
            message=e["msg"].removeprefix("Value error, "),
        )
        for e in exc.errors()
    ]


async def _table(request: Request, model: type[BaseModel]) -> table_files.Table:
    content = await request.body()
    try:
        # parsing (openpyxl) takes seconds for a large file: off the event loop
        table = await run_in_threadpool(
            table_files.read_table, content, request.headers.get("content-type", "")
        )
    except table_files.TableError as exc:
        raise HTTPException(422, str(exc)) from exc
    known = set(model.model_fields)
    unknown = [c for c in table.columns if c not in known]
    if unknown:
        raise HTTPException(422, f"unknown columns {unknown}; the columns are {sorted(known)}")
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise HTTPException(422, f"missing columns {missing}")
    return table


def _parse(
    table: table_files.Table, model: type[Any]
) -> tuple[list[tuple[int, Any]], list[RowError]]:
    good: list[tuple[int, Any]] = []
    errors: list[RowError] = []
    for number, row in table.rows:
        try:
            good.append(
                (number, model.model_validate({k: v for k, v in row.items() if v is not None}))
            )
        except ValidationError as exc:
            errors.extend(_errors(number, exc))
    return good, errors


IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            table_files.XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/import/engineers", response_model=ImportOut, tags=["registry"], openapi_extra=IMPORT_BODY
)
async def import_engineers(
    request: Request,
    conn: Conn,
    admin: Admin,
    settings: SettingsDep,
    dry_run: bool = Query(default=False, description="check and count, write nothing"),
) -> ImportOut:
    """Admin only. CSV or XLSX, one engineer per row (see the module's doc)."""
    table = await _table(request, EngineerRow)
    rows, errors = _parse(table, EngineerRow)
    seen: dict[str, int] = {}
    unique: list[tuple[int, EngineerRow]] = []
    for number, row in rows:
        lowered = row.id.lower()
        if lowered in seen:
            errors.append(
                RowError(
                    row=number, field="id", message=f"id {row.id!r} is also on row {seen[lowered]}"
                )
            )
            continue
        seen[lowered] = number
        unique.append((number, row))
    lowered_ids = list(seen)
    existing = {
        r.id.lower(): r
        for r in await conn.execute(
            select(Engineer).where(in_array(func.lower(Engineer.id), lowered_ids))
        )
    }
    elsewhere: dict[str, str] = {}
    for kind, column in (
        ("device", Device.id),
        ("project", Project.id),
        ("account", Account.username),
    ):
        for (value,) in await conn.execute(
            select(column).where(in_array(func.lower(column), lowered_ids))
        ):
            elsewhere.setdefault(value.lower(), kind)
    key = _personal_key(request)
    today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
    creates: list[EngineerRow] = []
    updates: list[tuple[Any, dict[str, Any], dict[str, list[Any]]]] = []
    unchanged = 0
    for number, row in unique:
        lowered = row.id.lower()
        holder = "broker" if lowered.startswith(RESERVED_PREFIX) else elsewhere.get(lowered)
        if holder:
            errors.append(
                RowError(
                    row=number, field="id", message=f"id {row.id!r} already exists as a {holder}"
                )
            )
        elif lowered not in existing:
            creates.append(row)
        else:
            current = existing[lowered]
            if current.id != row.id:
                errors.append(
                    RowError(
                        row=number,
                        field="id",
                        message=f"engineer {current.id!r} exists (ids are compared without case)",
                    )
                )
                continue
            values, changes = _changes(current, row, key)
            if changes:
                updates.append((current, values, changes))
            else:
                unchanged += 1
    errors.sort(key=lambda e: e.row)
    out = ImportOut(
        dry_run=dry_run,
        rows=len(table.rows),
        created=len(creates),
        updated=len(updates),
        unchanged=unchanged,
        errors=errors,
    )
    if dry_run or not (creates or updates):
        return out
    await _create_engineers(conn, admin, creates, key, today)
    for current, values, changes in updates:
        await _update_engineer(conn, admin, current, values, changes, today)
    await registry_changed(conn)
    return out


def _changes(
    current: Any, row: EngineerRow, key: bytes
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The column values to write and the changes as the change history shows them."""
    values: dict[str, Any] = {}
    changes: dict[str, list[Any]] = {}
    given = row.model_fields_set  # an empty cell or a missing column leaves the field as it is
    for name in (n for n in PLAIN if n in given):
        new = getattr(row, name)
        if getattr(current, name) != new:
            values[name] = new
            changes[name] = [_shown(getattr(current, name)), _shown(new)]
    for name in (n for n in PERSONAL if n in given):
        old_enc = getattr(current, f"{name}_enc")
        old = sm4_decrypt(key, old_enc) if old_enc else None
        new = getattr(row, name)
        if old != new:
            values[f"{name}_enc"] = sm4_encrypt(key, new) if new else None
            values[f"{name}_last4"] = _last4(new)
            changes[name] = ["*" if old else None, "*" if new else None]
    if "ce_hours" in given and float(current.ce_hours or 0.0) != row.ce_hours:
        values["ce_hours"] = row.ce_hours
        changes["ce_hours"] = [current.ce_hours, row.ce_hours]
    return values, changes


def _shown(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


async def _create_engineers(
    conn: Any, admin: Caller, rows: list[EngineerRow], key: bytes, today: dt.date
) -> None:
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        values = [
            {
                "id": r.id,
                **{name: getattr(r, name) for name in PLAIN},
                "phone_enc": sm4_encrypt(key, r.phone) if r.phone else None,
                "phone_last4": _last4(r.phone),
                "id_number_enc": sm4_encrypt(key, r.id_number) if r.id_number else None,
                "id_number_last4": _last4(r.id_number),
                "ce_hours": r.ce_hours,
            }
            for r in chunk
        ]
        created = (await conn.execute(pg_insert(Engineer).values(values).returning(Engineer))).all()
        await conn.execute(
            insert(CertStatusChange).values(
                [
                    {"engineer_id": r.id, "status": r.cert_status, "from_date": SINCE_REGISTRATION}
                    for r in chunk
                ]
            )
        )
        await conn.execute(
            insert(AuditEntry).values(
                [
                    {
                        "actor": admin.name[:80],
                        "action": "engineer.create",
                        "target": f"engineer:{row.id}",
                        "details": {
                            k: v
                            for k, v in engineer_out(row).model_dump(mode="json").items()
                            if v is not None
                        },
                    }
                    for row in created
                ]
            )
        )
        declared = [
            {
                "engineer_id": r.id,
                "year": today.year,
                "hours": r.ce_hours,
                "kind": "declared",
                "ref": f"declared:{today.year}",
                "actor": admin.name,
            }
            for r in chunk
            if r.ce_hours > 0
        ]
        if declared:
            await conn.execute(insert(CeRecord).values(declared))


async def _update_engineer(
    conn: Any,
    admin: Caller,
    current: Any,
    values: dict[str, Any],
    changes: dict[str, list[Any]],
    today: dt.date,
) -> None:
    if "cert_status" in values:
        values["cert_status_from"] = today
    await conn.execute(update(Engineer).where(Engineer.id == current.id).values(**values))
    if "cert_status" in values:
        await conn.execute(
            insert(CertStatusChange).values(
                engineer_id=current.id, status=values["cert_status"], from_date=today
            )
        )
    if "ce_hours" in values:
        await declare_hours(conn, admin, current.id, values["ce_hours"], today.year)
    await conn.execute(
        insert(AuditEntry).values(
            actor=admin.name[:80],
            action="engineer.update",
            target=f"engineer:{current.id}",
            details={"changes": changes, "via": "import"},
        )
    )


class FilingRow(schemas.FilingCreate):
    model_config = ConfigDict(extra="forbid")


@router.post(
    "/import/filings", response_model=ImportOut, tags=["registry"], openapi_extra=IMPORT_BODY
)
async def import_filings(
    request: Request,
    conn: Conn,
    admin: Admin,
    dry_run: bool = Query(default=False, description="check and count, write nothing"),
) -> ImportOut:
    """Admin only. CSV or XLSX, one filing per row: engineer_id, region_code, valid_from,
    valid_to, project_id (optional). A row equal to a filing already there is left alone."""
    table = await _table(request, FilingRow)
    rows, errors = _parse(table, FilingRow)
    engineers = {
        e
        for (e,) in await conn.execute(
            select(Engineer.id).where(in_array(Engineer.id, {r.engineer_id for _, r in rows}))
        )
    }
    projects = {
        p
        for (p,) in await conn.execute(
            select(Project.id).where(
                in_array(Project.id, {r.project_id for _, r in rows if r.project_id})
            )
        )
    }
    present = {
        (f.engineer_id, f.region_code, f.valid_from, f.valid_to, f.project_id)
        for f in await conn.execute(select(Filing).where(in_array(Filing.engineer_id, engineers)))
    }
    creates: list[FilingRow] = []
    unchanged = 0
    for number, row in rows:
        fields = (row.engineer_id, row.region_code, row.valid_from, row.valid_to, row.project_id)
        if row.engineer_id not in engineers:
            errors.append(
                RowError(
                    row=number,
                    field="engineer_id",
                    message=f"no engineer {row.engineer_id!r}: import the engineers first",
                )
            )
        elif row.project_id is not None and row.project_id not in projects:
            errors.append(
                RowError(row=number, field="project_id", message=f"no project {row.project_id!r}")
            )
        elif fields in present:
            unchanged += 1
        else:
            present.add(fields)
            creates.append(row)
    errors.sort(key=lambda e: e.row)
    out = ImportOut(
        dry_run=dry_run,
        rows=len(table.rows),
        created=len(creates),
        updated=0,
        unchanged=unchanged,
        errors=errors,
    )
    if dry_run or not creates:
        return out
    await registry_changed(conn)  # takes the registry lock: filing ids commit in order
    for start in range(0, len(creates), CHUNK):
        chunk = creates[start : start + CHUNK]
        ids = (
            (
                await conn.execute(
                    insert(Filing).values([r.model_dump() for r in chunk]).returning(Filing.id)
                )
            )
            .scalars()
            .all()
        )
        await conn.execute(
            insert(AuditEntry).values(
                [
                    {
                        "actor": admin.name[:80],
                        "action": "filing.create",
                        "target": f"filing:{i}",
                        "details": r.model_dump(mode="json"),
                    }
                    for i, r in zip(ids, chunk, strict=True)
                ]
            )
        )
    return out
