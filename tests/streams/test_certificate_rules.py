"""`practice_while_suspended` and the certificate read by date (CONTRACT §6.5), pure, with
hand-computed expectations. Local days are Asia/Shanghai."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.certificate import SINCE_REGISTRATION, Certificate, StatusEntry
from rules.engineer_batch import EngineerFacts
from tests.streams.test_streams_rules import LON, fix, local, run

D = dt.date(2026, 3, 2)


def history(*entries: tuple[dt.date, str, int]) -> Certificate:
    return Certificate.of(
        [StatusEntry(day, status, entry_id) for day, status, entry_id in entries],
        valid_to=None,
        current_status=entries[-1][1] if entries else "valid",
    )


def test_the_status_in_force_is_the_latest_dated_on_or_before_the_day() -> None:
    cert = history(
        (SINCE_REGISTRATION, "valid", 1),
        (D, "suspended", 2),
        (D + dt.timedelta(days=10), "valid", 3),
    )
    assert cert.on(D - dt.timedelta(days=1)).status == "valid"
    assert cert.on(D).status == "suspended"
    assert cert.on(D + dt.timedelta(days=9)).status == "suspended"
    assert cert.on(D + dt.timedelta(days=10)).status == "valid"
    assert cert.on(D).decided_by == "status suspended from 2026-03-02 (history entry 2)"
    assert "at registration" in cert.on(dt.date(2020, 1, 1)).decided_by


def test_two_entries_of_one_day_the_one_recorded_last_wins_and_validity_ends_it() -> None:
    cert = Certificate.of(
        [StatusEntry(D, "valid", 9), StatusEntry(D, "suspended", 4)],
        valid_to=D + dt.timedelta(days=1),
        current_status="valid",
    )
    assert cert.on(D).status == "valid"  # entry 9 was recorded after entry 4
    assert cert.on(D - dt.timedelta(days=1)).status == "suspended"  # the first applies before
    expired = cert.on(D + dt.timedelta(days=2))
    assert (expired.status, expired.decided_by) == ("expired", "certificate valid to 2026-03-03")
    assert Certificate(current_status="suspended").on(D).status == "suspended"  # no history


def test_fixes_before_the_suspension_raise_nothing_and_after_it_one_alert_per_day() -> None:
    facts = {
        "E1": EngineerFacts(
            "440305", (), history((SINCE_REGISTRATION, "valid", 1), (D, "suspended", 2))
        )
    }
    out = run(
        [
            fix("before", local(9, day=1)),  # 2026-03-01: valid
            fix("d-1", local(9, day=2)),  # 2026-03-02: suspended from today
            fix("d-2", local(10, day=2)),  # the same day: the same alert
            fix("d-off", local(11, day=2), lon=LON + 0.5),  # off site: not practising there
            fix("next", local(9, day=3)),
        ],
        facts=facts,
    )
    alerts = {a["id"]: a for a in out.alerts if a["type"] == "practice_while_suspended"}
    assert sorted(alerts) == [
        "practice_while_suspended:E1:P1:2026-03-02",
        "practice_while_suspended:E1:P1:2026-03-03",
    ]
    first = alerts["practice_while_suspended:E1:P1:2026-03-02"]
    assert first["details"]["decided_by"] == "status suspended from 2026-03-02 (history entry 2)"
    assert first["region_code"] == "440305"


def test_a_valid_certificate_raises_nothing() -> None:
    out = run([fix("a", local(9)), fix("b", local(9, day=3))])
    assert [a for a in out.alerts if a["type"] == "practice_while_suspended"] == []


def test_a_correction_dated_before_the_change_it_corrects_overrides_it() -> None:
    cert = history(
        (SINCE_REGISTRATION, "valid", 1),
        (D, "suspended", 2),  # suspended from 2026-03-02 ...
        (D - dt.timedelta(days=5), "valid", 3),  # ... then corrected: valid from 02-25 on
    )
    assert [cert.on(D + dt.timedelta(days=k)).status for k in (-6, -1, 0, 9)] == ["valid"] * 4
    assert "history entry 3" in cert.on(D).decided_by


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(-20, 20), st.sampled_from(["valid", "suspended", "expired"])),
        max_size=6,
    ),
    st.none() | st.integers(-20, 20),
    st.lists(st.integers(-25, 25), min_size=1, max_size=40),
)
def test_a_kept_certificate_answers_as_a_new_one(
    entries: list[tuple[int, str]], valid_to: int | None, days: list[int]
) -> None:
    """The standings a certificate remembers are the ones it decides, asked in any order."""

    def make() -> Certificate:
        return Certificate.of(
            [StatusEntry(D + dt.timedelta(days=d), s, i) for i, (d, s) in enumerate(entries)],
            valid_to=None if valid_to is None else D + dt.timedelta(days=valid_to),
            current_status=entries[-1][1] if entries else "suspended",
        )

    kept = make()
    for d in days:
        day = D + dt.timedelta(days=d)
        assert kept.on(day) == make().on(day)
    assert kept == make() and hash(kept) == hash(make())
