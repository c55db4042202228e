"""What the stream worker keeps per engineer between batches: the track (geofence.tracking)
and the clock of `missing_log` (rules.day_close), and how it is stored.

Stored as a head (`format: 3`: the anchor, the newest window fix's time, the clock); the
window itself is not stored. Every window fix is a row of `fixes`, written in the same
transaction as the head, so a head and the engineer's fixes after its anchor give the window
back (`from_head`): the accurate ones within `allowed_lateness_s` of the newest. Before
format 3 each window fix was also written to a table of its own, a row per fix and a delete
when it left (docs/BENCHMARKS.md). `from_dict` still reads the stored forms before it: the
TrackState dict (with its window) and `format: 2` (a compact window inline)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from geofence.tracking import KeptFix, TrackFix, TrackState
from rules.day_close import EngineerClock

__all__ = ["EngineerState", "compact_fix", "window_from"]


@dataclass(frozen=True)
class EngineerState:
    track: TrackState
    clock: EngineerClock = field(default_factory=EngineerClock)

    def to_dict(self) -> dict[str, Any]:
        """The whole state (`format: 2`, the window inline): for tests and exports."""
        return {
            **self.head_dict(),
            "format": 2,
            "window": [compact_fix(k) for k in self.track.kept_window],
        }

    def head_dict(self) -> dict[str, Any]:
        """What is stored (`format: 3`): everything but the window's fixes."""
        t = self.track
        newest = t.kept_newest
        return {
            "format": 3,
            "engineer_id": t.engineer_id,
            "anchor": compact_fix(t.kept_anchor) if t.kept_anchor is not None else None,
            "newest": newest[0] if newest is not None else None,
            "clock": self.clock.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineerState:
        """A state stored with its window (`format: 2`, or the older TrackState dict)."""
        clock = EngineerClock.from_dict(d.get("clock"))
        if d.get("format") != 2:
            return cls(TrackState.from_dict(d), clock)
        window = sorted((_expand(f) for f in d.get("window") or ()), key=attrgetter("key"))
        track = TrackState.of(str(d.get("engineer_id", "")), _anchor(d), window)
        return cls(track, clock)

    @classmethod
    def from_head(
        cls,
        head: Mapping[str, Any],
        fixes: Iterable[TrackFix],
        *,
        allowed_lateness_s: float,
        max_accuracy_m: float,
    ) -> EngineerState:
        """A `format: 3` head with its window rebuilt from `fixes`, the engineer's stored
        fixes from `window_from(head, ...)` on (more do no harm)."""
        anchor = _anchor(head)
        newest = head.get("newest")
        window = _window(anchor, newest, fixes, allowed_lateness_s, max_accuracy_m)
        track = TrackState.of(str(head.get("engineer_id", "")), anchor, window)
        return cls(track, EngineerClock.from_dict(head.get("clock")))


def window_from(head: Mapping[str, Any], allowed_lateness_s: float) -> float | None:
    """The earliest time a window fix of `head` can have (epoch seconds); None when the
    track has no window (no fix accepted yet)."""
    newest = head.get("newest")
    return None if newest is None else float(newest) - allowed_lateness_s


def _window(
    anchor: TrackFix | None,
    newest: float | None,
    fixes: Iterable[TrackFix],
    lateness_s: float,
    max_accuracy_m: float,
) -> tuple[TrackFix, ...]:
    """geofence.tracking's window: the accepted fixes after the anchor whose time is within
    the lateness of the newest. Accepted means accurate (the others were ignored); a fix the
    track refused as too late is older than the cutoff or not after the anchor, so it stays
    out."""
    after = sorted(
        (
            f
            for f in fixes
            if (f.acc_m is None or f.acc_m <= max_accuracy_m)
            and (anchor is None or f.key > anchor.key)
        ),
        key=attrgetter("key"),
    )
    if not after:
        return ()
    cutoff = (after[-1].ts if newest is None else newest) - lateness_s
    return tuple(f for f in after if f.ts >= cutoff)


def compact_fix(k: KeptFix) -> list[Any]:
    """A kept fix as stored: [msg_id, ts, lon, lat, acc_m, project_ids]."""
    ts, msg_id, lon, lat, acc_m, project_ids = k
    return [msg_id, ts, lon, lat, acc_m, list(project_ids)]


def _anchor(d: Mapping[str, Any]) -> TrackFix | None:
    anchor = d.get("anchor")
    return _expand(anchor) if anchor else None


def _expand(v: Sequence[Any]) -> TrackFix:
    msg_id, ts, lon, lat, acc_m, projects = v
    return TrackFix(str(msg_id), ts, lon, lat, acc_m, tuple(projects))
