"""Credit score and filing eligibility of an engineer: pure functions of stored facts.

The model (docs/evidence.md, every number a setting ``SITEWATCH_CREDIT_*`` /
``SITEWATCH_ELIGIBILITY_*``) starts at 100 and subtracts penalties computed over a window of
``window_days`` local days ending on the day asked about:

* attendance: ``attendance_weight x (1 - rate)``, rate = present days / required days, where
  each project the engineer works on (member or chief) with ``required_days_per_month``
  requires that many days per calendar month, prorated to the part of the month inside the
  window (and after the project was registered); present days per project and month count
  at most the requirement, so one month's surplus does not hide another's absence;
* ``cross_region_unfiled``, ``impossible_travel``, ``missing_log``,
  ``practice_while_suspended`` and ``chief_absent`` alerts: points per alert, each kind capped; alerts retracted by the system (a late fix undid them) do not count;
* alert closure: ``closure_weight x (1 - resolved / due)``, ``due`` = the engineer's alerts
  raised more than ``closure_grace_days`` ago;
* issues found (the seed's 发现问题数): ``issues_weight x (1 - min(1, found / expected))``,
  ``found`` = the notices and stop-work orders the engineer issued in the window,
  ``expected`` = one per ``issues_days`` present days; scored from ``issues_days`` present
  days on (an engineer seldom on site is not expected to have found anything);
* rectification closure (the seed's 整改闭合率): ``rectification_weight x (1 - on_time / due)``,
  ``due`` = the notices and stop-work orders the engineer issued whose deadline fell in the
  window and has passed, ``on_time`` = those the engineer closed by their deadline (the first
  ``close`` of the notice's chain).

Score = 100 - penalties, clamped to 0..100, one decimal; tier A at ``tier_a_min`` or more,
B at ``tier_b_min`` or more, else C.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AlertFact",
    "CreditFacts",
    "CreditModel",
    "EligibilityFacts",
    "EligibilityRules",
    "NoticeFact",
    "ProjectRequirement",
    "REASONS",
    "credit_score",
    "eligibility",
    "is_active_project",
]

VIOLATIONS = (
    "cross_region_unfiled",
    "impossible_travel",
    "missing_log",
    "practice_while_suspended",
    "chief_absent",
)
INACTIVE_STATUSES = ("completed", "closed", "cancelled", "canceled", "suspended", "finished")


@dataclass(frozen=True)
class CreditModel:
    """Weights of the credit score; environment ``SITEWATCH_CREDIT_<NAME>``
    (config.env.dataclass_from_env, in the API)."""

    window_days: int = 90
    attendance_weight: float = 40.0
    cross_region_unfiled_points: float = 10.0
    cross_region_unfiled_cap: float = 30.0
    impossible_travel_points: float = 5.0
    impossible_travel_cap: float = 15.0
    missing_log_points: float = 3.0
    missing_log_cap: float = 15.0
    practice_while_suspended_points: float = 20.0
    practice_while_suspended_cap: float = 40.0
    chief_absent_points: float = 10.0
    chief_absent_cap: float = 30.0
    closure_weight: float = 10.0
    closure_grace_days: float = 7.0
    rectification_weight: float = 10.0
    issues_weight: float = 5.0
    issues_days: float = 20.0
    tier_a_min: float = 85.0
    tier_b_min: float = 60.0


@dataclass(frozen=True)
class EligibilityRules:
    """Filing rules; environment ``SITEWATCH_ELIGIBILITY_<NAME>``."""

    max_chief_projects: int = 3
    # 《注册监理工程师管理规定》(建设部令第147号) and its continuing-education measures: 96
    # hours per four-year registration period, i.e. 24 a year; counted per calendar year
    ce_hours_per_year: float = 24.0
    blocked_tiers: tuple[str, ...] = ("C",)


@dataclass(frozen=True)
class ProjectRequirement:
    project_id: str
    required_days_per_month: int
    since: dt.date  # the first local day the project existed


@dataclass(frozen=True)
class AlertFact:
    id: str
    type: str
    status: str
    ts: dt.datetime
    retracted: bool = False


@dataclass(frozen=True)
class NoticeFact:
    id: str
    deadline: dt.datetime
    closed_at: dt.datetime | None  # first closed by its issuer (or an admin)
    issued_at: dt.datetime | None = None


@dataclass(frozen=True)
class CreditFacts:
    engineer_id: str
    start: dt.date  # first local day of the window
    end: dt.date  # last local day of the window (inclusive)
    now: dt.datetime  # when the score is computed (alert closure grace)
    requirements: Sequence[ProjectRequirement] = ()
    present: Mapping[str, frozenset[dt.date]] = field(default_factory=dict)  # project -> days
    alerts: Sequence[AlertFact] = ()
    notices: Sequence[NoticeFact] = ()


def _months(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date, int]]:
    """(first, last, days in month) of each calendar month part between start and end."""
    out = []
    cur = start
    while cur <= end:
        days = calendar.monthrange(cur.year, cur.month)[1]
        month_end = dt.date(cur.year, cur.month, days)
        last = min(month_end, end)
        out.append((cur, last, days))
        cur = last + dt.timedelta(days=1)
    return out


def _attendance(facts: CreditFacts, model: CreditModel) -> dict[str, Any]:
    projects = []
    required_total = 0.0
    present_total = 0.0
    for req in sorted(facts.requirements, key=lambda r: r.project_id):
        if req.required_days_per_month <= 0:
            continue
        start = max(facts.start, req.since)
        if start > facts.end:
            continue
        present_days = facts.present.get(req.project_id, frozenset())
        required = 0.0
        counted = 0.0
        for first, last, days in _months(start, facts.end):
            part = req.required_days_per_month * ((last - first).days + 1) / days
            here = sum(1 for d in present_days if first <= d <= last)
            required += part
            counted += min(float(here), part)
        required_total += required
        present_total += counted
        projects.append(
            {
                "project_id": req.project_id,
                "required_days_per_month": req.required_days_per_month,
                "required_days": round(required, 2),
                "present_days": sum(1 for d in present_days if start <= d <= facts.end),
            }
        )
    rate = None if required_total <= 0 else min(1.0, present_total / required_total)
    penalty = 0.0 if rate is None else model.attendance_weight * (1.0 - rate)
    return {
        "rate": None if rate is None else round(rate, 4),
        "required_days": round(required_total, 2),
        "present_days_counted": round(present_total, 2),
        "weight": model.attendance_weight,
        "penalty": round(penalty, 2),
        "projects": projects,
        "note": None
        if rate is not None
        else "no project with required_days_per_month in the window: not scored",
    }


def credit_score(facts: CreditFacts, model: CreditModel) -> dict[str, Any]:
    """``{score, tier, breakdown, window, model}`` for ``facts`` under ``model``."""
    breakdown: dict[str, Any] = {"attendance": _attendance(facts, model)}
    counted = [a for a in facts.alerts if not a.retracted]
    for kind in VIOLATIONS:
        n = sum(1 for a in counted if a.type == kind)
        points = float(getattr(model, f"{kind}_points"))
        cap = float(getattr(model, f"{kind}_cap"))
        breakdown[kind] = {
            "count": n,
            "points_each": points,
            "cap": cap,
            "penalty": round(min(cap, n * points), 2),
        }
    grace = dt.timedelta(days=model.closure_grace_days)
    due = [a for a in counted if a.ts <= facts.now - grace]
    resolved = sum(1 for a in due if a.status == "resolved")
    rate = None if not due else resolved / len(due)
    breakdown["alert_closure"] = {
        "due": len(due),
        "resolved": resolved,
        "rate": None if rate is None else round(rate, 4),
        "grace_days": model.closure_grace_days,
        "weight": model.closure_weight,
        "penalty": 0.0 if rate is None else round(model.closure_weight * (1.0 - rate), 2),
    }
    breakdown["issues_found"] = _issues_found(facts, model)
    breakdown["rectification_closure"] = _rectification(facts, model)
    penalty = sum(float(part["penalty"]) for part in breakdown.values())
    score = round(min(100.0, max(0.0, 100.0 - penalty)), 1)
    tier = "A" if score >= model.tier_a_min else "B" if score >= model.tier_b_min else "C"
    return {
        "engineer_id": facts.engineer_id,
        "score": score,
        "tier": tier,
        "breakdown": breakdown,
        "window": {"from": facts.start.isoformat(), "to": facts.end.isoformat()},
        "model": dataclasses.asdict(model),
    }


def _issues_found(facts: CreditFacts, model: CreditModel) -> dict[str, Any]:
    present = sum(len(days) for days in facts.present.values())
    start = dt.datetime.combine(facts.start, dt.time(), dt.UTC) - dt.timedelta(hours=14)
    end = dt.datetime.combine(facts.end + dt.timedelta(days=1), dt.time(), dt.UTC)
    found = sum(1 for n in facts.notices if n.issued_at is not None and start <= n.issued_at < end)
    expected = present / model.issues_days if model.issues_days > 0 else 0.0
    rate = None if expected < 1 else min(1.0, found / expected)
    return {
        "found": found,
        "present_days": present,
        "expected": round(expected, 2),
        "rate": None if rate is None else round(rate, 4),
        "weight": model.issues_weight,
        "penalty": 0.0 if rate is None else round(model.issues_weight * (1.0 - rate), 2),
    }


def _rectification(facts: CreditFacts, model: CreditModel) -> dict[str, Any]:
    start = dt.datetime.combine(facts.start, dt.time(), dt.UTC) - dt.timedelta(hours=14)
    end = dt.datetime.combine(facts.end + dt.timedelta(days=1), dt.time(), dt.UTC)
    in_window = [n for n in facts.notices if start <= n.deadline < end]
    due = [n for n in in_window if n.deadline <= facts.now]
    on_time = sum(1 for n in due if n.closed_at is not None and n.closed_at <= n.deadline)
    rate = None if not due else on_time / len(due)
    return {
        "due": len(due),
        "closed_on_time": on_time,
        "rate": None if rate is None else round(rate, 4),
        "weight": model.rectification_weight,
        "penalty": 0.0 if rate is None else round(model.rectification_weight * (1.0 - rate), 2),
    }


# --------------------------------------------------------------------------- eligibility

REASONS = {
    "cert_not_valid": "The registration certificate is not valid.",
    "credit_tier_c": "The credit tier does not allow a new filing.",
    "too_many_chief_projects": "The engineer already leads the maximum number of projects.",
    "ce_hours_insufficient": "Continuing-education hours are below the yearly requirement.",
}


def is_active_project(properties: Mapping[str, Any] | None, today: dt.date) -> bool:
    """A project is active unless ``properties.status`` says it ended (completed, closed,
    cancelled, suspended, finished) or ``properties.end_date`` (ISO date) is before today."""
    props = properties or {}
    status = props.get("status")
    if isinstance(status, str) and status.strip().lower() in INACTIVE_STATUSES:
        return False
    end = props.get("end_date")
    if isinstance(end, str):
        try:
            return dt.date.fromisoformat(end[:10]) >= today
        except ValueError:
            return True
    return True


@dataclass(frozen=True)
class EligibilityFacts:
    engineer_id: str
    project_id: str
    role: str  # chief | member
    cert_status: str
    ce_hours: float
    score: float
    tier: str
    chief_of: Sequence[str] = ()  # active projects led as chief, other than project_id
    # what decided the certificate's status and the hours (the records a reason names)
    cert_decided_by: str = "registry status"
    ce_year: int | None = None
    ce_record_ids: Sequence[int] = ()


def _ce_decided_by(facts: EligibilityFacts) -> str:
    year = f" of {facts.ce_year}" if facts.ce_year else ""
    if not facts.ce_record_ids:
        return f"no continuing-education records{year}"
    ids = ", ".join(str(i) for i in facts.ce_record_ids[:20])
    return f"continuing-education records{year}: {ids}"


def eligibility(facts: EligibilityFacts, rules: EligibilityRules) -> dict[str, Any]:
    """``{eligible, reasons: [code], details: [{code, message, decided_by}]}``; every
    failing condition is listed, in a fixed order, with the record that decided it."""
    details: list[dict[str, str]] = []
    if facts.cert_status != "valid":
        details.append(
            {
                "code": "cert_not_valid",
                "message": f"Engineer {facts.engineer_id}'s registration certificate is "
                f"{facts.cert_status}; only a valid certificate can be filed to a project.",
                "decided_by": facts.cert_decided_by,
            }
        )
    if facts.tier in rules.blocked_tiers:
        details.append(
            {
                "code": "credit_tier_c",
                "message": f"Credit score {facts.score:g} is tier {facts.tier}; engineers of "
                f"tier {'/'.join(rules.blocked_tiers)} cannot be filed to a project.",
                "decided_by": "credit score (GET /api/engineers/{id}/credit)",
            }
        )
    if facts.role == "chief" and len(facts.chief_of) >= rules.max_chief_projects:
        listed = ", ".join(sorted(facts.chief_of)[:10])
        details.append(
            {
                "code": "too_many_chief_projects",
                "message": f"Engineer {facts.engineer_id} is already chief engineer of "
                f"{len(facts.chief_of)} active projects ({listed}); the limit is "
                f"{rules.max_chief_projects}.",
                "decided_by": f"projects {listed}",
            }
        )
    if facts.ce_hours < rules.ce_hours_per_year:
        details.append(
            {
                "code": "ce_hours_insufficient",
                "message": f"Continuing-education hours are {facts.ce_hours:g}, below the "
                f"yearly requirement of {rules.ce_hours_per_year:g}.",
                "decided_by": _ce_decided_by(facts),
            }
        )
    return {
        "engineer_id": facts.engineer_id,
        "project_id": facts.project_id,
        "role": facts.role,
        "eligible": not details,
        "reasons": [d["code"] for d in details],
        "details": details,
        "credit": {"score": facts.score, "tier": facts.tier},
    }
