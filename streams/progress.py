"""Which records of a source partition the worker has written, and so which offset it may
commit: the next offset after an unbroken run of written records, nothing else.

Faust commits what its stream acknowledged, and its consumer can lose records on the way to
the agent around a rebalance (cleared queues, records fetched for a partition paused
meanwhile, a read offset set back): the next record then sits past a gap, and Faust commits
over the gap (docs/reliability.md). Here every partition's records go through `admit` in
offset order: a record past a gap is held back and the partition is sought back to the
first missing offset; a record already written is dropped. `done` moves the partition on
once the batch is in PostgreSQL, and `committable` is what the consumer commits
(streams.faust_fixes).

A seek can be lost too (a rebalance in between), and a gap is only noticed when a later
record arrives: once the load stops, nothing would. So `stalled` names the partitions that
have records past their next offset yet wrote nothing for `STALL_AFTER_S` while no batch of
their topic was being written; the worker's timer seeks them again (streams.faust_fixes).

Pure bookkeeping: the caller does the seeking (`Admitted.seek`, `stalled`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

RESEEK_AFTER_S = 1.0  # the same gap seen again after this long: seek again
STALL_AFTER_S = 10.0  # records waiting and none written for this long: read them again


@dataclass
class Admitted:
    """The events of a batch to process (in order), and the partitions to seek back."""

    events: list[Any]
    seek: dict[Hashable, int] = field(default_factory=dict)  # partition -> first missing offset
    duplicates: int = 0
    held_back: int = 0


@dataclass
class Progress:
    """Per owned partition: the next offset to write (None: not known yet, take the first)."""

    clock: Callable[[], float] = time.monotonic
    next_offset: dict[Hashable, int | None] = field(default_factory=dict)
    _sought: dict[Hashable, tuple[int, float]] = field(default_factory=dict)
    _moved_at: dict[Hashable, float] = field(default_factory=dict)  # last assigned or written
    # partitions of the batches being written (a batch waiting for PostgreSQL included)
    _writing: Counter[Hashable] = field(default_factory=Counter)

    def owned(self, positions: dict[Hashable, int | None]) -> None:
        """The partitions were (re)assigned and sought to these committed offsets."""
        now = self.clock()
        for tp, offset in positions.items():
            self.next_offset[tp] = offset
            self._sought.pop(tp, None)
            self._moved_at[tp] = now

    def forget(self, tps: Iterable[Hashable]) -> None:
        """The partitions were revoked: never commit for them again."""
        for tp in tps:
            self.next_offset.pop(tp, None)
            self._sought.pop(tp, None)
            self._moved_at.pop(tp, None)

    def admit(self, events: Sequence[Any], tp_of: Callable[[Any], Hashable]) -> Admitted:
        """The events to process: per owned partition the unbroken run from its next offset.
        Events of partitions not owned (any more) pass unchanged: their sinks are idempotent
        and nothing is committed for them."""
        out = Admitted([])
        expect = {tp: self.next_offset.get(tp) for tp in {tp_of(e) for e in events}}
        for e in sorted(events, key=lambda e: (str(tp_of(e)), e.message.offset)):  # stable
            tp = tp_of(e)
            offset = e.message.offset
            if tp not in self.next_offset:
                out.events.append(e)
                continue
            want = expect[tp]
            if want is None or offset == want:
                out.events.append(e)
                expect[tp] = offset + 1
            elif offset < want:
                out.duplicates += 1
            else:
                out.held_back += 1
                if tp not in out.seek and self._should_seek(tp, want):
                    out.seek[tp] = want
        return out

    def done(self, events: Iterable[Any], tp_of: Callable[[Any], Hashable]) -> None:
        """The admitted events are written: their partitions move on."""
        now = self.clock()
        for e in events:
            tp = tp_of(e)
            if tp in self.next_offset:
                current = self.next_offset[tp]
                if current is None or e.message.offset >= current:
                    self.next_offset[tp] = e.message.offset + 1
                    self._moved_at[tp] = now

    def writing(self, tps: Iterable[Hashable]) -> None:
        """A batch of these partitions is being written, retries included, until `finished`."""
        self._writing.update(tps)

    def finished(self, tps: Iterable[Hashable]) -> None:
        """The batch is over, however it ended."""
        self._writing.subtract(tps)
        self._writing = +self._writing  # drop the partitions at zero

    def stalled(
        self, ends: dict[Hashable, int], topic_of: Callable[[Hashable], Hashable] = lambda tp: tp
    ) -> dict[Hashable, int]:
        """Owned partitions to read again from their next offset: records wait in them (`ends`:
        each partition's end offset, from the broker), yet none was written for
        `STALL_AFTER_S`, and no batch of their topic is being written (the topic's agent may
        be waiting for PostgreSQL: not a stall). Each is named at most once per
        `STALL_AFTER_S`."""
        now = self.clock()
        busy = {topic_of(tp) for tp in self._writing}
        out: dict[Hashable, int] = {}
        for tp, end in ends.items():
            want = self.next_offset.get(tp)
            if want is None:
                continue  # not owned, or its first offset not known yet
            if topic_of(tp) in busy:
                continue
            if want >= end:
                self._moved_at[tp] = now  # nothing waits: a stall can only start from here
            elif now - self._moved_at.setdefault(tp, now) >= STALL_AFTER_S:
                out[tp] = want
                self._moved_at[tp] = now
        return out

    def ends_unknown(self) -> None:
        """The broker could not say where the partitions end: it may not serve fetches either,
        so what waits has not been waiting on the consumer; every wait starts again."""
        now = self.clock()
        for tp in self.next_offset:
            self._moved_at[tp] = now

    def committable(self, tp: Hashable) -> int | None:
        return self.next_offset.get(tp)

    def _should_seek(self, tp: Hashable, offset: int) -> bool:
        now = self.clock()
        last = self._sought.get(tp)
        if last is not None and last[0] == offset and now - last[1] < RESEEK_AFTER_S:
            return False
        self._sought[tp] = (offset, now)
        return True
