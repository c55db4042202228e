"""streams.progress: a source partition's records are written in offset order, without gaps,
and only what was written is committable."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams.progress import RESEEK_AFTER_S, STALL_AFTER_S, Progress


def ev(tp: str, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))


def tp_of(e: Any) -> str:
    return str(e.message.tp)


def offsets(events: list[Any]) -> list[tuple[str, int]]:
    return [(tp_of(e), e.message.offset) for e in events]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_unbroken_run_is_admitted_and_moves_the_partition_on() -> None:
    p = Progress()
    p.owned({"a": 10, "b": None})
    batch = [ev("a", 10), ev("b", 7), ev("a", 11), ev("b", 8)]
    admitted = p.admit(batch, tp_of)
    assert sorted(offsets(admitted.events)) == [("a", 10), ("a", 11), ("b", 7), ("b", 8)]
    assert admitted.seek == {}
    assert p.committable("a") == 10  # nothing written yet
    p.done(admitted.events, tp_of)
    assert (p.committable("a"), p.committable("b")) == (12, 9)


def test_a_gap_holds_back_what_follows_and_asks_for_a_seek() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    p.owned({"a": 405})
    batch = [ev("a", o) for o in [*range(405, 427), *range(507, 510)]]
    admitted = p.admit(batch, tp_of)
    assert [e.message.offset for e in admitted.events] == list(range(405, 427))
    assert admitted.held_back == 3
    assert admitted.seek == {"a": 427}
    p.done(admitted.events, tp_of)
    assert p.committable("a") == 427  # never past the gap
    # the same gap again at once: no second seek; after a while: seek again
    assert p.admit([ev("a", 510)], tp_of).seek == {}
    clock.now += RESEEK_AFTER_S + 0.1
    assert p.admit([ev("a", 510)], tp_of).seek == {"a": 427}
    # read again from 427 (after the stale records): all admitted in order
    again = p.admit([ev("a", 511), *(ev("a", o) for o in range(427, 512))], tp_of)
    assert [e.message.offset for e in again.events] == list(range(427, 512))
    p.done(again.events, tp_of)
    assert p.committable("a") == 512


def test_records_already_written_are_dropped() -> None:
    p = Progress()
    p.owned({"a": 5})
    p.done([ev("a", 5), ev("a", 6)], tp_of)
    admitted = p.admit([ev("a", 5), ev("a", 6), ev("a", 7), ev("a", 7)], tp_of)
    assert offsets(admitted.events) == [("a", 7)]
    assert admitted.duplicates == 3


def test_partitions_not_owned_pass_and_are_never_committable() -> None:
    p = Progress()
    p.owned({"a": 0})
    p.forget(["a"])
    admitted = p.admit([ev("a", 3), ev("z", 9)], tp_of)
    assert len(admitted.events) == 2 and admitted.seek == {}
    p.done(admitted.events, tp_of)
    assert p.committable("a") is None and p.committable("z") is None


@given(
    st.lists(st.integers(min_value=0, max_value=40), max_size=120),
    st.integers(min_value=0, max_value=10),
)
def test_committable_is_always_the_end_of_an_unbroken_written_run(
    deliveries: list[int], start: int
) -> None:
    """Whatever the consumer delivers (drops, repeats, reorders), the committable offset
    never passes an offset that was not written."""
    p = Progress(clock=Clock())
    p.owned({"a": start})
    written: set[int] = set()
    for i in range(0, len(deliveries), 7):
        admitted = p.admit([ev("a", o) for o in deliveries[i : i + 7]], tp_of)
        p.done(admitted.events, tp_of)
        written.update(e.message.offset for e in admitted.events)
    committed = p.committable("a")
    assert committed is not None
    assert all(o in written for o in range(start, committed))


def test_a_partition_with_records_waiting_and_nothing_written_is_read_again() -> None:
    """A lost seek, or a consumer that stopped fetching: once the load stops no later record
    shows the gap, so the timer's look at the partitions' ends must."""
    clock = Clock()
    p = Progress(clock=clock)
    p.owned({"a": 10, "b": 5, "c": None})
    ends = {"a": 20, "b": 5, "c": 3, "x": 9}  # b caught up, c's start unknown, x not owned
    assert p.stalled(ends) == {}
    clock.now = STALL_AFTER_S - 0.1
    assert p.stalled(ends) == {}
    clock.now = STALL_AFTER_S
    assert p.stalled(ends) == {"a": 10}
    assert p.stalled(ends) == {}  # at most once per STALL_AFTER_S
    clock.now = 2 * STALL_AFTER_S
    assert p.stalled(ends) == {"a": 10}


def test_writing_or_catching_up_is_not_a_stall() -> None:
    clock = Clock()
    p = Progress(clock=clock)
    p.owned({"a": 0})
    admitted = p.admit([ev("a", 0), ev("a", 1)], tp_of)
    p.writing(["a", "a"])
    clock.now = 3 * STALL_AFTER_S  # the batch waits for PostgreSQL all this time
    assert p.stalled({"a": 50}) == {}
    p.done(admitted.events, tp_of)
    p.finished(["a", "a"])
    assert p.stalled({"a": 50}) == {}  # it just moved
    clock.now += STALL_AFTER_S
    assert p.stalled({"a": 50}) == {"a": 2}
    p.forget(["a"])
    assert p.stalled({"a": 50}) == {}
    p.owned({"b": 7})
    clock.now += 5 * STALL_AFTER_S
    assert p.stalled({"b": 7}) == {}  # nothing waits
    clock.now += STALL_AFTER_S - 1
    assert p.stalled({"b": 8}) == {}  # a record arrived: its wait counts from the last look


def test_a_batch_that_never_finishes_writing_does_not_switch_the_check_off() -> None:
    """A batch that raised out of its retries (or whose agent Faust restarted) is over: the
    caller's `finished` runs whatever way it ended."""
    clock = Clock()
    p = Progress(clock=clock)
    p.owned({"a": 0})
    p.admit([ev("a", 0)], tp_of)
    p.writing(["a"])
    p.finished(["a"])  # the write raised: never `done`
    clock.now = STALL_AFTER_S
    assert p.stalled({"a": 1}) == {"a": 0}


def test_a_busy_topic_keeps_its_other_partitions_waiting_without_a_stall() -> None:
    """Records of a topic's other partitions queue behind the batch its agent is writing."""
    clock = Clock()
    p = Progress(clock=clock)
    p.owned({("fixes", 0): 5, ("fixes", 1): 9, ("telemetry", 0): 3})
    p.writing([("fixes", 0)])
    clock.now = STALL_AFTER_S
    ends = {("fixes", 0): 6, ("fixes", 1): 12, ("telemetry", 0): 4}
    topic = lambda tp: tp[0]  # noqa: E731
    assert p.stalled(ends, topic_of=topic) == {("telemetry", 0): 3}
    p.finished([("fixes", 0)])
    assert p.stalled(ends, topic_of=topic) == {("fixes", 0): 5, ("fixes", 1): 9}
