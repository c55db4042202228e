"""Live attendance, kept per (engineer, project, local day) as the worker writes fixes.

CONTRACT section 4: minutes on site are the sum of the gaps of at most `max_gap_s` between
consecutive on-site fixes of an engineer at a project on a local day. REST computes them from
the stored fixes (store.queries.attendance). Recomputing that for the live map every two
seconds took a fifth of the worker's CPU and much of PostgreSQL's (docs/BENCHMARKS.md), so the
worker keeps a tally per key instead. A tally gives the stored-fixes figure exactly as long as
a batch brings no fix of the key older than the newest one counted: the new gaps are then
those between the tally's last fix and the batch's fixes in time order. A key the book does
not hold (first seen by this process, its partition just moved here, evicted) or a batch with
an older fix is recomputed from the stored fixes instead, inside the batch's transaction where
the batch's own fixes are visible (`plan` says which).

Times are integer microseconds since the epoch (PostgreSQL's resolution), so the sums are
exact. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AttendanceBook",
    "Key",
    "Plan",
    "Tally",
    "check_event_keys",
    "from_us",
    "iso_us",
    "on_site_fixes",
    "to_us",
]

Key = tuple[str, str, dt.date]  # (engineer_id, project_id, local date)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)
KEEP_DAYS = 2  # tallies of days older than the newest day seen minus this are dropped


def to_us(ts: dt.datetime) -> int:
    return (ts - EPOCH) // US


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


_SECONDS_ISO: dict[int, str] = {}  # "YYYY-MM-DDTHH:MM:SS" of recent whole seconds


def iso_us(us: int) -> str:
    """`from_us(us).isoformat()`, at about a quarter of its cost: a live attendance message has two
    such times, and formatting an aware datetime was most of building one."""
    seconds, micro = divmod(us, 1_000_000)
    prefix = _SECONDS_ISO.get(seconds)
    if prefix is None:
        if len(_SECONDS_ISO) >= 65_536:
            _SECONDS_ISO.clear()
        prefix = _SECONDS_ISO[seconds] = from_us(seconds * 1_000_000).isoformat()[:-6]
    return f"{prefix}.{micro:06d}+00:00" if micro else f"{prefix}+00:00"


def on_site_fixes(
    fixes: Iterable[dict[str, Any]], project_region: dict[str, str]
) -> list[tuple[Key, int, str]]:
    """(key, time in microseconds, project region) of each on-site fix of a batch's fix rows
    (rules.engineer_batch): one per project whose fence the fix is in."""
    return [
        ((f["engineer_id"], pid, f["local_date"]), to_us(f["ts"]), project_region.get(pid, ""))
        for f in fixes
        for pid in f["project_ids"]
    ]


def check_event_keys(fixes: Iterable[dict[str, Any]]) -> set[Key]:
    """The keys of a batch's on-site check-ins and check-outs. A check-out closes a shift that
    counts whole (CONTRACT §6.5): the union of a shift and the gaps is the stored-fixes
    figure, so such a key is recomputed, never incremented."""
    return {
        (f["engineer_id"], pid, f["local_date"])
        for f in fixes
        if f.get("kind") in ("checkin", "checkout")
        for pid in f["project_ids"]
    }


@dataclass(slots=True)
class Tally:
    first_us: int
    last_us: int
    on_site_us: int
    region_code: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A batch's on-site fixes split by key: `recompute` from the stored fixes, or `increments`
    (the fix times of a key, sorted) to add to its tally once the batch is committed."""

    recompute: set[Key]
    increments: dict[Key, list[int]]
    regions: dict[Key, str]


class AttendanceBook:
    def __init__(self, max_gap_s: float, max_keys: int = 500_000) -> None:
        self.max_gap_us = round(max_gap_s * 1_000_000)
        self.max_keys = max_keys
        self.tallies: dict[Key, Tally] = {}
        self.newest_day: dt.date | None = None

    def __len__(self) -> int:
        return len(self.tallies)

    def plan(
        self, on_site: Iterable[tuple[Key, int, str]], checked: set[Key] | None = None
    ) -> Plan:
        """`on_site`: (key, fix time in microseconds, project region) of each on-site fix;
        `checked`: keys with a check-in or check-out in the batch (always recomputed)."""
        times: dict[Key, list[int]] = defaultdict(list)
        regions: dict[Key, str] = {}
        for key, us, region in on_site:
            times[key].append(us)
            regions[key] = region
        recompute: set[Key] = set()
        increments: dict[Key, list[int]] = {}
        for key, ts in times.items():
            tally = self.tallies.get(key)
            if tally is None or min(ts) < tally.last_us or key in (checked or ()):
                recompute.add(key)
            else:
                increments[key] = sorted(ts)
        return Plan(recompute, increments, regions)

    def commit(self, plan: Plan, recomputed: Iterable[tuple[Key, Tally]]) -> None:
        """After the batch's transaction committed: the recomputed tallies replace the book's,
        the increments extend it. A recomputed key missing from `recomputed` (its fixes are not
        stored, e.g. retention trimmed the day) is dropped, so it is recomputed next time."""
        for key in plan.recompute:
            self.tallies.pop(key, None)
        for key, fresh in recomputed:
            self.tallies[key] = fresh
        for key, ts in plan.increments.items():
            tally = self.tallies.get(key)
            if tally is None:  # forgotten while the batch was being written: partitions moved
                continue
            last = tally.last_us
            for us in ts:
                if us - last <= self.max_gap_us:
                    tally.on_site_us += us - last
                last = us
            tally.last_us = last
            tally.region_code = plan.regions[key]
        self._evict([k[2] for k in plan.regions])

    def forget(self) -> None:
        """Partitions moved: another worker may have counted fixes of these keys meanwhile."""
        self.tallies.clear()

    def row(self, key: Key, min_minutes_present: float) -> dict[str, Any] | None:
        """The live attendance message body of `key`, shaped like store.queries.attendance_row."""
        tally = self.tallies.get(key)
        if tally is None:
            return None
        minutes = round(tally.on_site_us / 60_000_000, 2)
        return {
            "engineer_id": key[0],
            "project_id": key[1],
            "date": key[2].isoformat(),
            "first_in": iso_us(tally.first_us),
            "last_out": iso_us(tally.last_us),
            "minutes_on_site": minutes,
            "present": minutes >= min_minutes_present,
            "region_code": tally.region_code,
        }

    def _evict(self, days: list[dt.date]) -> None:
        newest = max(days, default=None)
        if newest is not None and (self.newest_day is None or newest > self.newest_day):
            self.newest_day = newest
            floor = newest - dt.timedelta(days=KEEP_DAYS)
            self.tallies = {k: v for k, v in self.tallies.items() if k[2] >= floor}
        while len(self.tallies) > self.max_keys:  # the oldest inserted first
            del self.tallies[next(iter(self.tallies))]


@dataclass
class PushPacer:
    """The keys whose attendance changed, let out at most once per `interval_s` each. Asked
    often (the worker: every half second), it spreads the pushes: a key goes out at the first
    ask after it changed unless it went out less than `interval_s` before, then at the first
    ask after its interval is over, with what it has then; instead of every key at once
    (thousands of messages in one burst held up the positions behind them on the way to the
    browsers). An ask costs what it lets out and what expired, not every key it holds.
    `now` is a monotonic clock: it never goes back.

    `forget` (partitions moved) drops the changes still waiting out their interval: a key
    that gets no further fix is not pushed again by this worker. Its next fix, wherever it is
    handled, goes out at once (the new owner has never pushed it), and REST has its figures."""

    interval_s: float
    due: set[Key] = field(default_factory=set)  # changed, free to go out
    waiting: set[Key] = field(default_factory=set)  # changed, went out within the interval
    pushed: dict[Key, float] = field(default_factory=dict)  # when each key last went out
    _order: deque[tuple[float, Key]] = field(default_factory=deque)  # `pushed`, oldest first

    def changed(self, keys: Iterable[Key]) -> None:
        pushed, waiting, due = self.pushed, self.waiting, self.due
        for key in keys:
            (waiting if key in pushed else due).add(key)

    def take(self, now: float) -> list[Key]:
        order, pushed = self._order, self.pushed
        while order and now - order[0][0] >= self.interval_s:
            at, key = order.popleft()
            if pushed.get(key) == at:
                del pushed[key]
                if key in self.waiting:
                    self.waiting.remove(key)
                    self.due.add(key)
        ready = sorted(self.due)
        self.due.clear()
        for key in ready:
            pushed[key] = now
            order.append((now, key))
        return ready

    def forget(self) -> None:
        self.due.clear()
        self.waiting.clear()
        self.pushed.clear()
        self._order.clear()
