"""An engineer's registration certificate as of a date (CONTRACT §6.5): its status history and
its validity. Pure: the worker and the API read the rows, these functions decide.

The history holds one entry per recorded status with the date it applies from; the status on
a day is that of the entry recorded last among those dated on or before it (so a correction
dated before the change it corrects overrides it, and the registry's current status, the last
one recorded, is the status today). Before the first entry the first entry applies: the
status recorded at registration applies from the beginning of time: an
engineer registered today may send a replay of last week, and the registration is the only
thing known about last week. A certificate past its `valid_to` is expired whatever the
history says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

VALID = "valid"
# the date the status recorded at registration applies from: before any fix
SINCE_REGISTRATION = dt.date(1, 1, 1)


@dataclass(frozen=True)
class StatusEntry:
    from_date: dt.date
    status: str  # valid | suspended | expired
    entry_id: int  # the row in cert_status_history, named in `decided_by`
    recorded: int = 0  # the order entries were recorded in (by time, then id); 0: by id


@dataclass(frozen=True)
class Standing:
    """The certificate's status on one day and the record that decided it."""

    status: str
    decided_by: str  # "status suspended from 2026-12-01 (history entry 7)", ...

    @property
    def valid(self) -> bool:
        return self.status == VALID


@dataclass(frozen=True)
class Certificate:
    history: tuple[StatusEntry, ...] = ()
    valid_to: dt.date | None = None
    current_status: str = VALID  # the registry's column: used when the history is empty
    # the standings already decided, by day: the worker asks once per fix and project, of
    # certificates it keeps for a minute (store.engineer_facts), for a handful of days
    _standings: dict[dt.date, Standing] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def of(
        cls,
        entries: list[StatusEntry] | tuple[StatusEntry, ...],
        *,
        valid_to: dt.date | None,
        current_status: str,
    ) -> Certificate:
        ordered = tuple(sorted(entries, key=lambda e: (e.from_date, e.recorded, e.entry_id)))
        return cls(ordered, valid_to, current_status)

    def on(self, day: dt.date) -> Standing:
        standing = self._standings.get(day)
        if standing is None:
            standing = self._standings[day] = self._decide(day)
        return standing

    def _decide(self, day: dt.date) -> Standing:
        if self.valid_to is not None and day > self.valid_to:
            return Standing("expired", f"certificate valid to {self.valid_to.isoformat()}")
        in_force = [e for e in self.history if e.from_date <= day]
        if not in_force:
            if not self.history:
                return Standing(self.current_status, "registry status (no history recorded)")
            return Standing(self.history[0].status, describe(self.history[0]))
        # the statement about `day` recorded last wins: a correction dated earlier than a
        # change it corrects overrides that change too
        latest = max(in_force, key=lambda e: (e.recorded, e.entry_id))
        return Standing(latest.status, describe(latest))


def describe(entry: StatusEntry) -> str:
    if entry.from_date == SINCE_REGISTRATION:
        return f"status {entry.status} at registration (history entry {entry.entry_id})"
    return (
        f"status {entry.status} from {entry.from_date.isoformat()} (history entry {entry.entry_id})"
    )
