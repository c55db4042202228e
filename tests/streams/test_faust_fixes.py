"""The corrections of streams.faust_fixes: what Faust would commit, and the order in which a
recovered worker seeks and resumes its stream partitions (docs/reliability.md)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from config import topics
from streams import faust_fixes

FIXES_0 = TP(topics.FIXES, 0)
CHANGELOG_0 = TP("sitewatch-streams-device-state-changelog", 0)


def consumer_state(committed: dict[TP, int], acked: dict[TP, list[int]]) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {tp: list(o) for tp, o in acked.items()}),
        _acked_index=defaultdict(set, {tp: set(o) for tp, o in acked.items()}),
        _committed_offset=defaultdict(lambda: None, committed),
        _gap=defaultdict(IntervalTree),
    )


def test_a_source_partition_commits_what_was_written_not_what_was_acknowledged() -> None:
    # Faust: committed 405 (the next to read), 406 and 407 acknowledged, 405 never arrived
    state = consumer_state({FIXES_0: 405}, {FIXES_0: [406, 407]})
    assert Consumer._new_offset(state, FIXES_0) == 408  # Faust commits over 405: lost
    faust_fixes.PROGRESS.owned({FIXES_0: 405})
    try:
        state = consumer_state({FIXES_0: 405}, {FIXES_0: [406, 407]})
        assert faust_fixes._new_offset(state, FIXES_0) == 405
        assert not state._acked[FIXES_0]  # the acknowledgements are not kept
        faust_fixes.written([event(FIXES_0, 405), event(FIXES_0, 406)])
        assert faust_fixes._new_offset(state, FIXES_0) == 407
    finally:
        faust_fixes.PROGRESS.forget([FIXES_0])


def test_other_topics_keep_fausts_rule() -> None:
    state = consumer_state({CHANGELOG_0: 405}, {CHANGELOG_0: [406, 407]})
    assert faust_fixes._new_offset(state, CHANGELOG_0) == 408


def test_a_gap_in_a_source_topic_is_not_acknowledged() -> None:
    state = consumer_state({FIXES_0: 400, CHANGELOG_0: 400}, {})
    asyncio.run(faust_fixes._add_gap(state, FIXES_0, 427, 506))
    assert not state._gap[FIXES_0]
    asyncio.run(faust_fixes._add_gap(state, CHANGELOG_0, 427, 506))
    assert state._gap[CHANGELOG_0]  # compacted changelogs do have holes: Faust's rule


def event(tp: TP, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset))


class Recorder:
    """A recovered worker's consumer, app and recovery service, recording what is called."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        tps = {FIXES_0, CHANGELOG_0}
        rec = self.calls.append

        async def perform_seek() -> None:
            rec("seek")

        async def maybe_start() -> None:
            rec("fetcher")

        async def wait(coro: Any, timeout: float | None = None) -> None:
            await coro

        self.consumer = SimpleNamespace(
            assignment=lambda: tps,
            pause_partitions=lambda p: rec(f"pause {sorted(t.topic for t in p)}"),
            resume_partitions=lambda p: rec(f"resume {sorted(t.topic for t in p)}"),
            resume_flow=lambda: rec("resume_flow"),
            perform_seek=perform_seek,
        )
        self.app = SimpleNamespace(
            consumer=self.consumer,
            conf=SimpleNamespace(broker_request_timeout=5.0),
            flow_control=SimpleNamespace(resume=lambda: rec("clear queues")),
            _fetcher=SimpleNamespace(maybe_start=maybe_start),
        )
        self.recovery = SimpleNamespace(
            app=self.app,
            _is_changelog_tp=lambda tp: tp == CHANGELOG_0,
            _wait=wait,
            completed=SimpleNamespace(set=lambda: rec("completed")),
            log=SimpleNamespace(info=lambda *a: None),
        )


def test_stream_partitions_resume_only_after_the_seek_and_the_queue_clear() -> None:
    r = Recorder()
    asyncio.run(faust_fixes._seek_paused_streams(r.recovery))
    order = r.calls
    assert order[0] == f"pause {[topics.FIXES]}"
    assert (
        order.index("seek") < order.index("clear queues") < order.index(f"resume {[topics.FIXES]}")
    )
    assert order[-1] == "fetcher"


def test_the_worker_installs_the_corrections(tmp_path: Any) -> None:
    from faust.tables.recovery import Recovery

    from config.settings import Settings
    from streams.worker import build_app

    build_app(Settings(data_dir=tmp_path))
    assert Consumer._add_gap is faust_fixes._add_gap
    assert Consumer._new_offset is faust_fixes._new_offset
    assert Recovery.on_recovery_completed is faust_fixes._on_recovery_completed
    assert Recovery._resume_streams is faust_fixes._resume_streams


FIXES_1 = TP(topics.FIXES, 1)


class SeekingConsumer:
    """What `_perform_seek` reads of Faust's consumer after Faust's own seek: partition 0 was
    committed at 405, partition 1 never (its log starts at 120: retention removed the rest)."""

    def __init__(self, earliest: Any) -> None:
        self._read_offset = {FIXES_0: 405, FIXES_1: None, CHANGELOG_0: None}
        self._earliest = earliest
        self.asked: list[tuple[TP, ...]] = []

    def assignment(self) -> set[TP]:
        return {FIXES_0, FIXES_1, CHANGELOG_0}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        self.asked.append(tps)
        if isinstance(self._earliest, Exception):
            raise self._earliest
        return dict(self._earliest)


def _seek(consumer: SeekingConsumer, monkeypatch: Any) -> None:
    async def faust_seek(_self: Any) -> None:
        return None

    monkeypatch.setattr(faust_fixes, "_faust_perform_seek", faust_seek)
    asyncio.run(faust_fixes._perform_seek(consumer))


def test_a_never_committed_partition_starts_at_its_log_start(monkeypatch: Any) -> None:
    consumer = SeekingConsumer({FIXES_1: 120})
    try:
        _seek(consumer, monkeypatch)
        assert consumer.asked == [(FIXES_1,)]  # only the source partition without a commit
        assert faust_fixes.PROGRESS.committable(FIXES_0) == 405
        assert faust_fixes.PROGRESS.committable(FIXES_1) == 120
        # Faust dropped 120-129 on their way: 130 is held back and the partition sought to 120
        admitted = faust_fixes.PROGRESS.admit([event(FIXES_1, 130)], faust_fixes.tp_of)
        assert admitted.events == [] and admitted.seek == {FIXES_1: 120}
    finally:
        faust_fixes.PROGRESS.forget([FIXES_0, FIXES_1])


@pytest.mark.parametrize("earliest", [TimeoutError("ListOffsets timed out"), {FIXES_1: -1}, {}])
def test_without_log_start_offsets_the_first_record_seen_is_taken(
    earliest: Any, monkeypatch: Any
) -> None:
    consumer = SeekingConsumer(earliest)
    try:
        _seek(consumer, monkeypatch)
        assert faust_fixes.PROGRESS.committable(FIXES_1) is None
        first = event(FIXES_1, 130)
        assert faust_fixes.PROGRESS.admit([first], faust_fixes.tp_of).events == [first]
    finally:
        faust_fixes.PROGRESS.forget([FIXES_0, FIXES_1])


def test_the_worker_refuses_another_faust_version() -> None:
    faust_fixes.check_faust_version(faust_fixes.FAUST_VERSION)
    faust_fixes.check_faust_version()  # the installed one is the one the fixes were written for
    with pytest.raises(RuntimeError, match="written for faust-streaming 0.15.3, found 0.16.0"):
        faust_fixes.check_faust_version("0.16.0")


@pytest.fixture(autouse=False)
def no_pending_answer() -> Any:
    faust_fixes._ENDS.clear()
    yield
    faust_fixes._ENDS.clear()


class EndsConsumer:
    """What `reseek_stalled` reads of Faust's consumer: its assignment and the partitions'
    ends on the broker; it records the seeks."""

    def __init__(self, ends: Any) -> None:
        self.ends = ends
        self.sought: list[tuple[TP, int]] = []

    def assignment(self) -> set[TP]:
        return {FIXES_0, FIXES_1, CHANGELOG_0}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        if isinstance(self.ends, Exception):
            raise self.ends
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))


def test_the_timer_reads_again_a_partition_whose_last_records_never_came(
    monkeypatch: Any, no_pending_answer: None
) -> None:
    """The load stopped after Faust dropped partition 0's records from 405 on (or a seek back
    was lost to a rebalance): no later record would show the gap."""
    now = [0.0]
    monkeypatch.setattr(faust_fixes.PROGRESS, "clock", lambda: now[0])
    consumer = EndsConsumer({FIXES_0: 500, FIXES_1: 120})
    try:
        faust_fixes.PROGRESS.owned({FIXES_0: 405, FIXES_1: 120})
        assert asyncio.run(faust_fixes.reseek_stalled(consumer)) == {}
        now[0] = faust_fixes.STALL_AFTER_S
        assert asyncio.run(faust_fixes.reseek_stalled(consumer)) == {FIXES_0: 405}
        assert consumer.sought == [(FIXES_0, 405)]  # the caught-up partition and the changelog stay
        now[0] *= 3
        consumer.ends = TimeoutError("ListOffsets timed out")  # the broker is away
        assert asyncio.run(faust_fixes.reseek_stalled(consumer)) == {}
        consumer.ends = {FIXES_0: 500, FIXES_1: 120}  # back: the fetcher gets its time again
        now[0] += faust_fixes.STALL_AFTER_S - 1
        assert asyncio.run(faust_fixes.reseek_stalled(consumer)) == {}
        assert consumer.sought == [(FIXES_0, 405)]
        now[0] += 1
        assert asyncio.run(faust_fixes.reseek_stalled(consumer)) == {FIXES_0: 405}
    finally:
        faust_fixes.PROGRESS.forget([FIXES_0, FIXES_1])


class SlowEndsConsumer(EndsConsumer):
    """The broker takes longer than the check waits: Faust's consumer thread is still on it."""

    def __init__(self, ends: Any) -> None:
        super().__init__(ends)
        self.asked = 0
        self.answer: asyncio.Event | None = None

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        self.asked += 1
        assert self.answer is not None
        await self.answer.wait()
        return {tp: self.ends[tp] for tp in tps}


def test_a_slow_answer_is_awaited_again_not_asked_twice(
    monkeypatch: Any, no_pending_answer: None
) -> None:
    now = [0.0]
    monkeypatch.setattr(faust_fixes.PROGRESS, "clock", lambda: now[0])
    consumer = SlowEndsConsumer({FIXES_0: 500, FIXES_1: 120})

    async def scenario() -> list[dict[TP, int]]:
        consumer.answer = asyncio.Event()
        faust_fixes.PROGRESS.owned({FIXES_0: 405, FIXES_1: 120})
        now[0] = faust_fixes.STALL_AFTER_S
        first = await faust_fixes.reseek_stalled(consumer, timeout_s=0.05)  # times out
        second = await faust_fixes.reseek_stalled(consumer, timeout_s=0.05)  # still waiting
        consumer.answer.set()
        now[0] = 3 * faust_fixes.STALL_AFTER_S
        third = await faust_fixes.reseek_stalled(consumer, timeout_s=0.05)
        return [first, second, third]

    try:
        assert asyncio.run(scenario()) == [{}, {}, {FIXES_0: 405}]
        assert consumer.asked == 1
    finally:
        faust_fixes.PROGRESS.forget([FIXES_0, FIXES_1])
