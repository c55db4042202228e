"""An engineer's practice record: evidence chain, credit score, filing eligibility and history
for incident investigation (CONTRACT section 2; docs/evidence.md).

Scoping: admins see every engineer; an engineer sees their own record; a regulator sees the
whole record of an engineer registered in their region, and, for an engineer registered
elsewhere who has facts (fixes, alerts) in their region, the verification result, the credit
score and the entries and history items that lie in their region.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from attachments.files import FileStore
from geofence.codes import code_prefix
from live_api.auth import Caller
from live_api.deps import Conn, CurrentCaller, SettingsDep, credit_rules, unknown
from live_api.history_formats import as_csv, as_geojson, download, iso
from rules import credit as credit_model
from rules import evidence_chain as chain
from store import credit_facts as credit_store
from store import evidence as store
from store import seals as seal_store
from store.models import Engineer, Project

router = APIRouter(prefix="/api")

MAX_HISTORY_DAYS = 366
MAX_HISTORY_ROWS = 100_000

FULL, REGIONAL = "full", "regional"


class EligibilityIn(BaseModel):
    engineer_id: str = Field(min_length=1, max_length=64)
    project_id: str = Field(min_length=1, max_length=64)
    role: Literal["chief", "member"]
    on: dt.date | None = Field(
        default=None,
        description="the local day asked about (default today): the certificate's status, "
        "the continuing education of its year and the credit as of that day",
    )


class EligibilityDetail(BaseModel):
    code: str
    message: str
    decided_by: str | None = Field(default=None, description="the record that decided this reason")


class EligibilityOut(BaseModel):
    engineer_id: str
    project_id: str
    role: str
    eligible: bool
    reasons: list[str]
    details: list[EligibilityDetail]
    credit: dict[str, Any] | None = Field(
        default=None, description="null for a regulator who may not read the engineer's credit"
    )


class VerifyOut(BaseModel):
    engineer_id: str
    ok: bool
    entries: int
    verified: int
    head: str
    genesis: str
    broken_at: int | None = None
    broken: dict[str, Any] | None = None
    seals: dict[str, Any] | None = None


class CreditOut(BaseModel):
    engineer_id: str
    score: float
    tier: Literal["A", "B", "C"]
    breakdown: dict[str, Any]
    window: dict[str, str]
    model: dict[str, Any]


def _covers(caller: Caller, region: str | None) -> bool:
    try:
        return caller.sees_region(region)
    except ValueError:
        return False


async def _engineer(conn: Any, caller: Caller, engineer_id: str) -> Any:
    row = (await conn.execute(select(Engineer).where(Engineer.id == engineer_id))).first()
    if row is None:
        raise unknown(caller, "engineer", engineer_id)
    return row


async def _access(conn: Any, caller: Caller, eng: Any) -> str:
    """FULL or REGIONAL access to ``eng``'s record, or HTTP 403."""
    if caller.role == "admin":
        return FULL
    if caller.role == "engineer" and caller.engineer_id == eng.id:
        return FULL
    if caller.role == "regulator" and caller.region_code:
        if _covers(caller, eng.registered_region):
            return FULL
        prefix = code_prefix(caller.region_code)
        if prefix:
            has_facts = (
                await conn.execute(
                    text(
                        "SELECT EXISTS (SELECT 1 FROM fixes WHERE engineer_id = :e "
                        "AND region_code LIKE :p) OR EXISTS (SELECT 1 FROM alerts "
                        "WHERE engineer_id = :e AND region_code LIKE :p)"
                    ),
                    {"e": eng.id, "p": prefix + "%"},
                )
            ).scalar_one()
            if has_facts:
                return REGIONAL
    raise HTTPException(403, f"engineer {eng.id!r} is outside your region or role")


MIN_DAY, MAX_DAY = dt.date(2000, 1, 1), dt.date(2100, 12, 31)


def _day(value: dt.date | None, name: str) -> dt.date | None:
    if value is not None and not MIN_DAY <= value <= MAX_DAY:
        raise HTTPException(422, f"{name} {value} is outside {MIN_DAY}..{MAX_DAY}")
    return value


def _local_today(tz: ZoneInfo) -> dt.date:
    return dt.datetime.now(tz).date()


# --------------------------------------------------------------------------- evidence


@router.get("/engineers/{engineer_id}/evidence", tags=["evidence"])
async def evidence_entries(
    engineer_id: str,
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    date: Annotated[dt.date | None, Query(description="local day (YYYY-MM-DD)")] = None,
    after_seq: int = Query(default=0, ge=0, le=2**62, description="page: entries after seq"),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> dict[str, Any]:
    """The engineer's chain entries (of one local day, or a page after ``after_seq``), in chain
    order, with the bytes they cover so anyone can recompute the hashes."""
    eng = await _engineer(conn, caller, engineer_id)
    access = await _access(conn, caller, eng)
    h = await store.head(conn, engineer_id) or chain.Head.empty(engineer_id)
    horizon = h.horizon(settings.allowed_lateness_s)
    rows = await store.entries(conn, engineer_id, date=date, after_seq=after_seq, limit=limit)
    out = []
    for r in rows:
        if access == REGIONAL and not _covers(caller, r["region_code"]):
            continue
        raw = bytes(r["canonical"])
        item: dict[str, Any] = {
            "seq": r["seq"],
            "kind": r["kind"],
            "msg_id": r["msg_id"],
            "ts": dt.datetime.fromtimestamp(r["ts"], dt.UTC).isoformat(),
            "event_ts": r["ts"],
            "order_ts": r["order_ts"],
            "late": r["order_ts"] != r["ts"],
            "sealed": horizon is not None and r["order_ts"] < horizon,
            "local_date": r["local_date"].isoformat(),
            "region_code": r["region_code"],
            "prev_hash": r["prev_hash"],
            "hash": r["hash"],
            "chained_at": r["chained_at"].isoformat(),
        }
        try:
            item["canonical"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            item["canonical_b64"] = base64.b64encode(raw).decode("ascii")
        out.append(item)
    return {
        "engineer_id": engineer_id,
        "date": date.isoformat() if date else None,
        "genesis": chain.genesis_hash(engineer_id),
        "head": {
            "entries": h.entries,
            "hash": h.hash,
            "watermark": h.watermark,
            "sealed_before": horizon,
        },
        "scope": access,
        "entries": out,
        "next_after_seq": rows[-1]["seq"] if len(rows) == limit else None,
    }


@router.get(
    "/engineers/{engineer_id}/evidence/verify",
    response_model=VerifyOut,
    response_model_exclude_none=True,
    tags=["evidence"],
)
async def evidence_verify(
    engineer_id: str, conn: Conn, caller: CurrentCaller, settings: SettingsDep
) -> dict[str, Any]:
    """Recompute the chain from its genesis: ``{ok, entries, broken_at?}``; ``broken`` names
    the first broken entry and why (hash_mismatch, prev_mismatch, seq_gap, out_of_order,
    fact_mismatch, fact_missing, file_mismatch: a practice record's file altered or gone,
    head_mismatch) or, for a chain rewritten consistently after
    it was sealed, `seal_mismatch` (``seals`` says how many sealed entries were checked)."""
    await store.one_snapshot(conn)
    eng = await _engineer(conn, caller, engineer_id)
    await _access(conn, caller, eng)
    seals, problems = await run_in_threadpool(seal_store.trusted_seals, settings)
    files = FileStore.of(settings.data_dir)
    result = await store.verify(
        conn,
        engineer_id,
        retention_days=settings.retention_days,
        seals=seals,
        file_digest=files.digest_of,
    )
    out = result.as_dict()
    if problems:  # a seal file altered or signed by another key: never trusted, always said
        out["seals"] = {**dict(result.seals or {}), "rejected_files": problems[:20]}
    return out


# --------------------------------------------------------------------------- credit


async def _credit(
    conn: Any, engineer_id: str, settings: Any, as_of: dt.date | None
) -> dict[str, Any]:
    model = credit_rules()[0]
    tz = ZoneInfo(settings.timezone)
    facts = await credit_store.credit_facts(
        conn,
        engineer_id,
        end=_day(as_of, "date") or _local_today(tz),
        window_days=model.window_days,
        max_gap_s=settings.max_gap_s,
        min_minutes_present=settings.min_minutes_present,
        timezone=settings.timezone,
        max_shift_s=settings.max_shift_s,
    )
    return credit_model.credit_score(facts, model)


@router.get("/engineers/{engineer_id}/credit", response_model=CreditOut, tags=["engineers"])
async def credit(
    engineer_id: str,
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    date: Annotated[dt.date | None, Query(description="score as of this local day")] = None,
) -> dict[str, Any]:
    """``{score, tier, breakdown}``: computed on request from the stored facts (a handful of
    indexed queries), so it always reflects every fact that has arrived."""
    eng = await _engineer(conn, caller, engineer_id)
    await _access(conn, caller, eng)
    return await _credit(conn, engineer_id, settings, date)


@router.post("/eligibility", response_model=EligibilityOut, tags=["engineers"])
async def check_eligibility(
    body: EligibilityIn, conn: Conn, caller: CurrentCaller, settings: SettingsDep
) -> dict[str, Any]:
    """May this engineer be filed to this project in this role? Every failing condition is
    a reason code with a sentence: cert_not_valid, credit_tier_c, too_many_chief_projects,
    ce_hours_insufficient."""
    refused = HTTPException(
        403, "eligibility needs the admin role, the project's or the engineer's regulator"
    )
    eng = (await conn.execute(select(Engineer).where(Engineer.id == body.engineer_id))).first()
    project = (await conn.execute(select(Project).where(Project.id == body.project_id))).first()
    if eng is None or project is None:  # to anyone but an admin, as if not theirs
        what = ("engineer", body.engineer_id) if eng is None else ("project", body.project_id)
        raise unknown(caller, *what) if caller.role == "admin" else refused
    allowed = (
        caller.role == "admin"
        or (caller.role == "engineer" and caller.engineer_id == eng.id)
        or (
            caller.role == "regulator"
            and (_covers(caller, project.region_code) or _covers(caller, eng.registered_region))
        )
    )
    if not allowed:
        raise refused
    tz = ZoneInfo(settings.timezone)
    day = _day(body.on, "on") or _local_today(tz)
    score = await _credit(conn, eng.id, settings, day)
    chief_of = await credit_store.chief_projects(conn, eng.id, today=day, exclude=project.id)
    standing = (await credit_store.certificate_of(conn, eng.id)).on(day)
    ce_hours, ce_records = await credit_store.ce_hours_of(conn, eng.id, day.year)
    answer = credit_model.eligibility(
        credit_model.EligibilityFacts(
            engineer_id=eng.id,
            project_id=project.id,
            role=body.role,
            cert_status=standing.status,
            ce_hours=ce_hours,
            score=score["score"],
            tier=score["tier"],
            chief_of=chief_of,
            cert_decided_by=standing.decided_by,
            ce_year=day.year,
            ce_record_ids=ce_records,
        ),
        credit_rules()[1],
    )
    try:
        await _access(conn, caller, eng)
    except HTTPException:
        # the project's regulator may review the filing (the reason codes) but not read the
        # score of an engineer of another region, which `GET .../credit` refuses them
        answer.pop("credit", None)
        for detail in answer["details"]:
            if detail["code"] == "credit_tier_c":
                detail["message"] = "The engineer's credit tier does not allow filing."
    return answer


# --------------------------------------------------------------------------- history


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) for k, v in row.items()}


HISTORY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the history: JSON (format=json), CSV (csv) or GeoJSON (geojson)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/geo+json": {"schema": {"type": "object"}},
        },
    }
}


@router.get("/engineers/{engineer_id}/history", tags=["engineers"], responses=HISTORY_RESPONSES)
async def engineer_history(
    engineer_id: str,
    conn: Conn,
    caller: CurrentCaller,
    settings: SettingsDep,
    from_: Annotated[dt.date | None, Query(alias="from", description="first local day")] = None,
    to: Annotated[dt.date | None, Query(description="last local day (inclusive)")] = None,
    format: Literal["json", "csv", "geojson"] = "json",
) -> Any:
    """Everything an investigation needs in one call: the engineer's fixes (check-ins and
    positions), supervision logs, site entries/exits and alerts with their handling, between
    two local days (default: the last 30), as JSON, CSV (one row per event, time order) or
    GeoJSON (a FeatureCollection)."""
    eng = await _engineer(conn, caller, engineer_id)
    access = await _access(conn, caller, eng)
    tz = ZoneInfo(settings.timezone)
    last = _day(to, "to") or _local_today(tz)
    first = _day(from_, "from") or (last - dt.timedelta(days=29))
    if first > last:
        raise HTTPException(422, f"from ({first}) is after to ({last})")
    if (last - first).days + 1 > MAX_HISTORY_DAYS:
        raise HTTPException(422, f"at most {MAX_HISTORY_DAYS} days per call; narrow from/to")
    start = dt.datetime.combine(first, dt.time(), tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz)
    data = await store.history(conn, engineer_id, start=start, end=end, limit=MAX_HISTORY_ROWS)
    if access == REGIONAL:
        data = {
            k: [r for r in rows if _covers(caller, r.get("region_code"))]
            for k, rows in data.items()
        }
    meta = {
        "engineer": {
            "id": eng.id,
            "name": eng.name,
            "registered_region": eng.registered_region,
            "cert_status": eng.cert_status,
        },
        "from": first.isoformat(),
        "to": last.isoformat(),
        "timezone": settings.timezone,
        "scope": access,
    }
    filename = f"history-{engineer_id}-{first}-{last}"
    if format == "csv":
        return download(as_csv(data), "text/csv; charset=utf-8", f"{filename}.csv")
    if format == "geojson":
        body = json.dumps(as_geojson(data, meta), ensure_ascii=False, default=iso)
        return download(body, "application/geo+json", f"{filename}.geojson")
    return {
        **meta,
        "counts": {k: len(v) for k, v in data.items()},
        "fixes": [_clean(r) for r in data["fixes"]],
        "logs": [_clean(r) for r in data["logs"]],
        "transitions": [_clean(r) for r in data["transitions"]],
        "alerts": [
            {**_clean(a), "history": [_clean(h) for h in a["history"]]} for a in data["alerts"]
        ],
    }


__all__ = ["router"]
