"""An engineer's registration certificate as of a date (CONTRACT §6.5): its status history and
its validity. Pure: the worker and the API read the rows, these functions decide.

The history holds one entry per recorded status with the date it applies from; the entry in
force on a day is the latest one dated on or before it (of two dated the same day, the one
recorded last). The status recorded at registration applies from the beginning of time: an
engineer registered today may send a replay of last week, and the registration is the only
thing known about last week. A certificate past its `valid_to` is expired whatever the
history says.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

VALID = "valid"
# the date the status recorded at registration applies from: before any fix
SINCE_REGISTRATION = dt.date(1, 1, 1)


@dataclass(frozen=True)
class StatusEntry:
    from_date: dt.date
    status: str  # valid | suspended | expired
    entry_id: int  # the row in cert_status_history: orders two entries of one day


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

    @classmethod
    def of(
        cls,
        entries: list[StatusEntry] | tuple[StatusEntry, ...],
        *,
        valid_to: dt.date | None,
        current_status: str,
    ) -> Certificate:
        ordered = tuple(sorted(entries, key=lambda e: (e.from_date, e.entry_id)))
        return cls(ordered, valid_to, current_status)

    def on(self, day: dt.date) -> Standing:
        if self.valid_to is not None and day > self.valid_to:
            return Standing("expired", f"certificate valid to {self.valid_to.isoformat()}")
        in_force = None
        for entry in self.history:
            if entry.from_date > day:
                break
            in_force = entry
        if in_force is None:
            if not self.history:
                return Standing(self.current_status, "registry status (no history recorded)")
            in_force = self.history[0]
        return Standing(in_force.status, describe(in_force))


def describe(entry: StatusEntry) -> str:
    if entry.from_date == SINCE_REGISTRATION:
        return f"status {entry.status} at registration (history entry {entry.entry_id})"
    return (
        f"status {entry.status} from {entry.from_date.isoformat()} (history entry {entry.entry_id})"
    )
