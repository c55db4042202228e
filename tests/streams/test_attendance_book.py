"""The worker's live attendance tallies (rules.attendance) against the stored-fixes
definition (CONTRACT section 4, store.queries.ATTENDANCE_SQL), whatever the batches, the
arrival order and the redeliveries."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.attendance import (
    AttendanceBook,
    Key,
    PushPacer,
    Tally,
    from_us,
    iso_us,
    on_site_fixes,
    to_us,
)

DAY = dt.date(2026, 3, 2)
T0 = to_us(dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC))
MAX_GAP_S = 900.0


def stored_tally(times: set[int], region: str = "440305") -> Tally:
    """What ATTENDANCE_SQL computes from the stored fixes of one key."""
    ordered = sorted(times)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    return Tally(
        ordered[0], ordered[-1], sum(g for g in gaps if g <= MAX_GAP_S * 1_000_000), region
    )


def replay(
    book: AttendanceBook, batches: list[list[tuple[Key, int]]], stored: dict[Key, set[int]]
) -> None:
    """What the worker does per batch: insert the fixes (idempotent), plan, recompute inside
    the transaction from what is stored, commit."""
    for batch in batches:
        for key, us in batch:
            stored.setdefault(key, set()).add(us)
        plan = book.plan((key, us, "440305") for key, us in batch)
        book.commit(plan, [(k, stored_tally(stored[k])) for k in sorted(plan.recompute)])


def test_in_order_fixes_are_counted_without_recomputing() -> None:
    book = AttendanceBook(MAX_GAP_S)
    key = ("E1", "P1", DAY)
    first = book.plan([(key, T0, "440305")])
    assert first.recompute == {key}  # a key the book does not hold
    book.commit(first, [(key, Tally(T0, T0, 0, "440305"))])
    s = 1_000_000
    # 600 s, then 901 s (does not count), then exactly 900 s (counts)
    second = book.plan(
        [(key, T0 + 1501 * s, "440305"), (key, T0 + 600 * s, "440305"), (key, T0 + 2401 * s, "x")]
    )
    assert second.recompute == set()
    book.commit(second, [])
    assert book.row(key, 30.0) == {
        "engineer_id": "E1",
        "project_id": "P1",
        "date": "2026-03-02",
        "first_in": "2026-03-02T01:00:00+00:00",
        "last_out": "2026-03-02T01:40:01+00:00",
        "minutes_on_site": 25.0,
        "present": False,
        "region_code": "x",
    }
    # an older fix than the last counted: recomputed from the stored fixes
    assert book.plan([(key, T0 + 700 * s, "440305")]).recompute == {key}
    assert book.row(("E2", "P1", DAY), 30.0) is None


def test_forget_and_old_days_are_dropped() -> None:
    book = AttendanceBook(MAX_GAP_S)
    old, new = ("E1", "P1", DAY), ("E1", "P1", DAY + dt.timedelta(days=3))
    replay(book, [[(old, T0)], [(new, T0 + 3 * 86_400_000_000)]], {})
    assert book.row(old, 1.0) is None and book.row(new, 1.0) is not None
    book.forget()
    assert len(book) == 0


def test_partitions_moving_while_a_batch_is_written() -> None:
    book = AttendanceBook(MAX_GAP_S)
    key = ("E1", "P1", DAY)
    replay(book, [[(key, T0)]], {})
    plan = book.plan([(key, T0 + 60_000_000, "440305")])
    assert plan.increments == {key: [T0 + 60_000_000]}
    book.forget()  # a rebalance between the batch's plan and its commit
    book.commit(plan, [])
    assert book.row(key, 1.0) is None  # recomputed from the stored fixes next time


def test_on_site_fixes_one_per_project() -> None:
    ts = dt.datetime(2026, 3, 2, 1, 0, 0, 123456, tzinfo=dt.UTC)
    rows = [
        {"engineer_id": "E1", "local_date": DAY, "ts": ts, "project_ids": ["P1", "P2"]},
        {"engineer_id": "E1", "local_date": DAY, "ts": ts, "project_ids": []},
    ]
    got = on_site_fixes(rows, {"P1": "440305"})
    assert got == [(("E1", "P1", DAY), to_us(ts), "440305"), (("E1", "P2", DAY), to_us(ts), "")]
    assert from_us(to_us(ts)) == ts


keys = st.sampled_from([("E1", "P1", DAY), ("E1", "P2", DAY), ("E2", "P1", DAY)])
# fix times within two hours, in steps of 100 s, so gaps around max_gap_s occur often
fix_times = st.integers(0, 72).map(lambda k: T0 + k * 100_000_000)
batches = st.lists(st.lists(st.tuples(keys, fix_times), max_size=8), max_size=12)


@settings(max_examples=300, deadline=None)
@given(batches=batches, redeliver=st.lists(st.integers(0, 11), max_size=4))
def test_tallies_equal_the_stored_fixes_whatever_the_order(
    batches: list[list[tuple[Key, int]]], redeliver: list[int]
) -> None:
    # redelivery: a batch comes again later (at-least-once)
    sequence = list(batches) + [batches[i] for i in redeliver if i < len(batches)]
    book, stored = AttendanceBook(MAX_GAP_S), {}  # type: ignore[var-annotated]
    replay(book, sequence, stored)
    for key, times in stored.items():
        want = stored_tally(times)
        got = book.tallies[key]
        assert (got.first_us, got.last_us, got.on_site_us) == (
            want.first_us,
            want.last_us,
            want.on_site_us,
        )


def test_the_pacer_lets_each_key_out_at_most_once_per_interval() -> None:
    a, b = ("E1", "P", dt.date(2026, 3, 2)), ("E2", "P", dt.date(2026, 3, 2))
    pacer = PushPacer(interval_s=2.0)
    pacer.changed([a])
    assert pacer.take(now=0.0) == [a]
    assert pacer.take(now=0.1) == []  # nothing changed since
    pacer.changed([a, b])
    assert pacer.take(now=0.5) == [b]  # a went out 0.5 s ago: it waits
    assert pacer.take(now=1.9) == []
    assert pacer.take(now=2.0) == [a]  # its interval is over: out, with what it has now
    pacer.changed([a])
    pacer.forget()  # the partitions moved
    assert pacer.take(now=10.0) == []


# 0001-01-01 to 9999-12-31, in microseconds since the epoch
ANY_US = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)


@settings(max_examples=500)
@given(us=st.one_of(ANY_US, ANY_US.map(lambda u: u - u % 1_000_000)))
def test_iso_us_is_the_isoformat_of_the_time(us: int) -> None:
    assert iso_us(us) == from_us(us).isoformat()
    assert iso_us(us) == from_us(us).isoformat()  # the second time from its cache


class PlainPacer:
    """The pacer's definition, as it was written before its expiry queue and waiting set."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s, self.due, self.pushed = interval_s, set(), {}  # type: ignore[var-annotated]

    def take(self, now: float) -> list[Key]:
        self.pushed = {k: t for k, t in self.pushed.items() if now - t < self.interval_s}
        ready = sorted(k for k in self.due if k not in self.pushed)
        self.due.difference_update(ready)
        self.pushed.update((k, now) for k in ready)
        return ready


@settings(max_examples=300)
@given(
    steps=st.lists(
        st.tuples(st.lists(keys, max_size=3), st.integers(0, 15)),  # changed keys, then a wait
        max_size=40,
    )
)
def test_the_pacer_lets_out_what_its_definition_does(steps: list[tuple[list[Key], int]]) -> None:
    pacer, plain, now = PushPacer(interval_s=2.0), PlainPacer(2.0), 0.0
    for changed, wait in steps:
        pacer.changed(changed)
        plain.due.update(changed)
        now += wait / 4  # asked four times per interval, sometimes twice at one time
        assert pacer.take(now) == plain.take(now)
        assert pacer.pushed == plain.pushed
        assert pacer.due | pacer.waiting == plain.due  # what is still to go out
