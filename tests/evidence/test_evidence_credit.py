"""Credit score and eligibility as pure functions of stored facts."""

from __future__ import annotations

import datetime as dt

import pytest

from config.env import dataclass_from_env
from rules.credit import (
    AlertFact,
    CreditFacts,
    CreditModel,
    EligibilityFacts,
    EligibilityRules,
    NoticeFact,
    ProjectRequirement,
    credit_score,
    eligibility,
    is_active_project,
)

NOW = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)
MODEL = CreditModel()


def days(first: dt.date, n: int, step: int = 1) -> frozenset[dt.date]:
    return frozenset(first + dt.timedelta(days=i * step) for i in range(n))


def alert(i: int, type_: str, status: str = "open", age_days: float = 30, **kw: bool) -> AlertFact:
    return AlertFact(f"a{i}", type_, status, NOW - dt.timedelta(days=age_days), **kw)


def facts(**kw: object) -> CreditFacts:
    base: dict[str, object] = {
        "engineer_id": "E",
        "start": dt.date(2025, 6, 1),
        "end": dt.date(2025, 6, 30),
        "now": NOW,
    }
    base.update(kw)
    return CreditFacts(**base)  # type: ignore[arg-type]


def test_a_clean_record_scores_100_tier_a() -> None:
    result = credit_score(facts(), MODEL)
    assert (result["score"], result["tier"]) == (100.0, "A")
    assert result["breakdown"]["attendance"]["rate"] is None  # nothing required: not scored
    assert set(result["breakdown"]) == {
        "attendance",
        "cross_region_unfiled",
        "impossible_travel",
        "missing_log",
        "practice_while_suspended",
        "chief_absent",
        "alert_closure",
        "issues_found",
        "rectification_closure",
    }


def test_attendance_rate_against_required_days_per_month() -> None:
    req = [ProjectRequirement("P", 20, dt.date(2025, 1, 1))]
    half = facts(requirements=req, present={"P": days(dt.date(2025, 6, 1), 10)})
    result = credit_score(half, MODEL)
    att = result["breakdown"]["attendance"]
    assert att["required_days"] == 20 and att["rate"] == 0.5 and att["penalty"] == 20.0
    assert (result["score"], result["tier"]) == (80.0, "B")


def test_attendance_is_prorated_to_the_window_and_project_start() -> None:
    # 15-day window inside a 30-day month: 20/month -> 10 days required
    req = [ProjectRequirement("P", 20, dt.date(2025, 1, 1))]
    f = facts(
        start=dt.date(2025, 6, 16), requirements=req, present={"P": days(dt.date(2025, 6, 16), 10)}
    )
    assert credit_score(f, MODEL)["breakdown"]["attendance"]["rate"] == 1.0
    # a project registered on June 21 requires 10 days x 20/30 in June
    late_start = [ProjectRequirement("P", 30, dt.date(2025, 6, 21))]
    f = facts(requirements=late_start, present={"P": days(dt.date(2025, 6, 21), 10)})
    att = credit_score(f, MODEL)["breakdown"]["attendance"]
    assert att["required_days"] == 10 and att["rate"] == 1.0


def test_surplus_in_one_month_does_not_hide_absence_in_another() -> None:
    req = [ProjectRequirement("P", 10, dt.date(2025, 1, 1))]
    may = days(dt.date(2025, 5, 1), 31)  # every day of May
    f = facts(start=dt.date(2025, 5, 1), requirements=req, present={"P": may})
    att = credit_score(f, MODEL)["breakdown"]["attendance"]
    assert att["required_days"] == 20 and att["rate"] == 0.5  # June: 0 of 10


def test_violations_count_with_caps_and_retracted_alerts_do_not_count() -> None:
    alerts = [alert(i, "cross_region_unfiled", "resolved") for i in range(5)]
    alerts += [alert(10, "impossible_travel", "resolved")]
    alerts += [alert(11, "impossible_travel", "resolved", retracted=True)]
    alerts += [alert(20 + i, "missing_log", "resolved") for i in range(2)]
    result = credit_score(facts(alerts=alerts), MODEL)
    b = result["breakdown"]
    assert (b["cross_region_unfiled"]["count"], b["cross_region_unfiled"]["penalty"]) == (5, 30.0)
    assert (b["impossible_travel"]["count"], b["impossible_travel"]["penalty"]) == (1, 5.0)
    assert (b["missing_log"]["count"], b["missing_log"]["penalty"]) == (2, 6.0)
    assert b["alert_closure"]["rate"] == 1.0
    assert (result["score"], result["tier"]) == (59.0, "C")


def test_alert_closure_rate_counts_alerts_past_the_grace_period() -> None:
    alerts = [
        alert(1, "sensor_threshold", "resolved"),
        alert(2, "sensor_threshold", "open"),
        alert(3, "sensor_threshold", "acked"),
        alert(4, "sensor_threshold", "open", age_days=1),  # still within the grace period
    ]
    closure = credit_score(facts(alerts=alerts), MODEL)["breakdown"]["alert_closure"]
    assert closure["due"] == 3 and closure["resolved"] == 1
    assert closure["penalty"] == pytest.approx(10 * (1 - 1 / 3), abs=0.01)


def test_score_is_clamped_and_model_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = ["cross_region_unfiled", "impossible_travel", "missing_log"]
    alerts = [alert(i, t) for i, t in enumerate(kinds * 9)]
    req = [ProjectRequirement("P", 20, dt.date(2025, 1, 1))]
    worst = credit_score(facts(alerts=alerts, requirements=req), MODEL)
    assert (worst["score"], worst["tier"]) == (0.0, "C")
    monkeypatch.setenv("SITEWATCH_CREDIT_TIER_B_MIN", "50")
    monkeypatch.setenv("SITEWATCH_CREDIT_CROSS_REGION_UNFILED_POINTS", "1")
    model = dataclass_from_env(CreditModel, "SITEWATCH_CREDIT_")
    result = credit_score(facts(alerts=[alert(1, "cross_region_unfiled", "resolved")]), model)
    assert result["score"] == 99.0 and result["model"]["tier_b_min"] == 50


# --------------------------------------------------------------------------- eligibility


def elig(**kw: object) -> EligibilityFacts:
    base: dict[str, object] = {
        "engineer_id": "E",
        "project_id": "P",
        "role": "chief",
        "cert_status": "valid",
        "ce_hours": 40.0,
        "score": 92.0,
        "tier": "A",
        "chief_of": (),
    }
    base.update(kw)
    return EligibilityFacts(**base)  # type: ignore[arg-type]


RULES = EligibilityRules()


def test_eligible_engineer_has_no_reasons() -> None:
    out = eligibility(elig(), RULES)
    assert out["eligible"] is True and out["reasons"] == [] and out["details"] == []


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"cert_status": "suspended"}, "cert_not_valid"),
        ({"cert_status": "expired"}, "cert_not_valid"),
        ({"tier": "C", "score": 41.5}, "credit_tier_c"),
        ({"chief_of": ("P1", "P2", "P3")}, "too_many_chief_projects"),
        ({"ce_hours": 10.0}, "ce_hours_insufficient"),
    ],
)
def test_each_failing_condition_is_a_reason_with_a_sentence(kw: dict, code: str) -> None:
    out = eligibility(elig(**kw), RULES)
    assert out["eligible"] is False and out["reasons"] == [code]
    message = out["details"][0]["message"]
    assert out["details"][0]["code"] == code and message.endswith(".") and len(message) > 30


def test_all_failing_conditions_are_listed_and_members_have_no_chief_limit() -> None:
    out = eligibility(
        elig(cert_status="expired", tier="C", score=10, chief_of=("a", "b", "c", "d"), ce_hours=0),
        RULES,
    )
    assert out["reasons"] == [
        "cert_not_valid",
        "credit_tier_c",
        "too_many_chief_projects",
        "ce_hours_insufficient",
    ]
    assert eligibility(elig(role="member", chief_of=("a", "b", "c")), RULES)["eligible"]
    assert eligibility(elig(chief_of=("a", "b")), RULES)["eligible"]


def test_rules_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEWATCH_ELIGIBILITY_MAX_CHIEF_PROJECTS", "5")
    monkeypatch.setenv("SITEWATCH_ELIGIBILITY_CE_HOURS_PER_YEAR", "48")
    rules = dataclass_from_env(EligibilityRules, "SITEWATCH_ELIGIBILITY_")
    assert eligibility(elig(chief_of=("a", "b", "c", "d")), rules)["eligible"] is False
    assert eligibility(elig(ce_hours=50, chief_of=("a", "b", "c", "d")), rules)["eligible"]


def test_active_project() -> None:
    today = dt.date(2025, 6, 30)
    assert is_active_project({}, today)
    assert is_active_project(None, today)
    assert not is_active_project({"status": "Completed"}, today)
    assert not is_active_project({"end_date": "2025-06-29"}, today)
    assert is_active_project({"end_date": "2025-06-30"}, today)
    assert is_active_project({"end_date": "not a date"}, today)


def test_rectification_closure_counts_notices_closed_by_their_deadline() -> None:
    """Four notices due in the window: closed a day early, closed a day late, never closed,
    closed exactly at the deadline; one more not due yet. 2 of 4 on time: 10 x 0.5 = 5."""
    due = NOW - dt.timedelta(days=10)
    notices = [
        NoticeFact("n1", due, due - dt.timedelta(days=1)),
        NoticeFact("n2", due, due + dt.timedelta(days=1)),
        NoticeFact("n3", due, None),
        NoticeFact("n4", due, due),
        NoticeFact("n5", NOW + dt.timedelta(days=3), None),  # not due yet
    ]
    result = credit_score(facts(notices=notices), MODEL)
    term = result["breakdown"]["rectification_closure"]
    assert (term["due"], term["closed_on_time"], term["rate"], term["penalty"]) == (4, 2, 0.5, 5.0)
    assert result["score"] == 95.0


def test_issues_found_expects_one_notice_per_20_present_days() -> None:
    """50 present days expect 2.5 documented issues; one notice issued in the window (and one
    before it, not counted): 1 / 2.5 = 0.4, penalty 5 x 0.6 = 3. Fewer than 20 present days:
    not scored."""
    start = dt.date(2025, 4, 1)
    present = {"P": days(start, 50)}
    notices = [
        NoticeFact("in", NOW + dt.timedelta(days=5), None, NOW - dt.timedelta(days=20)),
        NoticeFact("before", NOW, None, NOW - dt.timedelta(days=200)),
    ]
    result = credit_score(facts(start=start, present=present, notices=notices), MODEL)
    term = result["breakdown"]["issues_found"]
    assert (term["found"], term["present_days"], term["rate"], term["penalty"]) == (1, 50, 0.4, 3.0)
    few = credit_score(facts(present={"P": days(start, 19)}), MODEL)["breakdown"]["issues_found"]
    assert (few["rate"], few["penalty"]) == (None, 0.0)
