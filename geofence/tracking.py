"""Per-engineer track state machine in event time: site entry/exit and impossible travel.

Pure and serialisable: ``advance(state, fixes) -> (new_state, output)`` never mutates its
input and reads no clock.

Model. Accepted fixes are kept in event-time order (ts, then msg_id). The state holds the
*window* - every accepted fix with ``ts >= newest_ts - allowed_lateness_s`` - plus the
*anchor*, the last accepted fix before the window. The on-site set after a fix is the
set of projects covering it, so the state needs nothing else. Events are a function of
the fixes in event-time order:

* ``SiteEntered(P)`` at fix f when P is in f.project_ids and was not on site before f;
  ``SiteExited(P)`` at f when P was on site before f and is not in f.project_ids.
  No transition without a change of the on-site set.
* ``ImpossibleTravel(a, b)`` for two consecutive accepted fixes a, b more than
  ``min_jump_m`` apart (geodesic) whose implied speed exceeds ``max_speed_kmh``; equal
  timestamps count as infinite speed. One event per pair. A teleporting fix still counts
  for geofencing.

Every event is a function of one pair of consecutive accepted fixes (a, b) and belongs to
``b``. A late fix x slotted in between a and b retracts the events of (a, b) (returned in
``retracted``) and adds those of (a, x) and (x, b) (in ``events``). Fixes that leave the
window can no longer get a new predecessor, so their events are final. Hence the
determinism property: for any arrival order in which no fix is too late, the net set of
events (emitted minus retracted, by id) is the same as for event-time order, and the
final state is the same too.

Input rules (per fix, in the order given):

* ``acc_m`` > ``max_accuracy_m`` (or NaN) -> ``ignored_inaccurate``; ``None`` (unknown) counts.
* ``ts < newest_ts - allowed_lateness_s`` -> ``too_late`` (a fix exactly at the limit is
  accepted), as is anything not after the anchor in event-time order. Re-sending a fix
  that already left the window is also reported ``too_late``.
* A msg_id already in the state -> ``duplicates``. Re-applying the same fixes is a no-op.
* None of these change the state.

Event ids: ``enter:{project}:{msg_id}``, ``exit:{project}:{msg_id}``,
``travel:{from_msg_id}:{to_msg_id}`` (msg_ids are globally unique per CONTRACT §3).
Keep ``max_speed_kmh``/``min_jump_m``/``allowed_lateness_s`` the same across calls for a
track; changing them re-evaluates the window with the new values.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from geofence.geodesic import geodesic_distance_m, sphere_distance_m
from geofence.track_events import (
    Event,
    ImpossibleTravel,
    SiteEntered,
    SiteExited,
    TrackOutput,
    event_from_dict,
)

__all__ = [
    "Event",
    "ImpossibleTravel",
    "KeptFix",
    "SiteEntered",
    "SiteExited",
    "TrackFix",
    "TrackOutput",
    "TrackState",
    "advance",
    "event_from_dict",
    "geodesic_distance_m",
]

STATE_VERSION = 1


# A fix as a track keeps it: (ts, msg_id, lon, lat, acc_m, project_ids), whose tuple order is
# event-time order (msg_ids are unique, so no comparison goes past them). A plain tuple of
# strings, floats and a tuple of strings is one CPython's collector stops tracking at its
# first collection, and a tuple of such tuples (a window) with it: an hour's window of up to
# 360 fixes per engineer then costs no collection anything. Kept as TrackFix objects, every
# fix was scanned by the young collections and then by every full one (docs/BENCHMARKS.md).
KeptFix = tuple[float, str, float, float, float | None, tuple[str, ...]]

# One tuple per set of covering projects, shared by every fix that has it. The collector
# untracks a tuple only after what it holds: a fix's own new project tuple would keep the fix
# tracked until a second collection, a shared one was untracked long before. Sets recur (a
# site's fixes all carry its id); the cap keeps a flood of new ones from growing it.
_SHARED_PROJECTS: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_SHARED_PROJECTS = 100_000


def _shared(projects: tuple[str, ...]) -> tuple[str, ...]:
    shared = _SHARED_PROJECTS.get(projects)
    if shared is None:
        if len(_SHARED_PROJECTS) >= _MAX_SHARED_PROJECTS:
            return projects
        _SHARED_PROJECTS[projects] = shared = projects
    return shared


@dataclass(frozen=True, slots=True)
class TrackFix:
    """One position of one engineer. ``project_ids``: fences covering it (any order).

    ``ts`` epoch seconds; ``lon``/``lat`` WGS-84 degrees; all must be finite
    (``ValueError``). ``project_ids`` is stored sorted and de-duplicated.
    """

    msg_id: str
    ts: float
    lon: float
    lat: float
    acc_m: float | None = None
    project_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Built once per fix on the worker's hot path: the common case (floats already, at
        # most one project) skips the frozen dataclass's costly object.__setattr__.
        ts, lon, lat, acc = self.ts, self.lon, self.lat, self.acc_m
        if not (type(ts) is float and type(lon) is float and type(lat) is float):
            for name in ("ts", "lon", "lat"):
                object.__setattr__(self, name, float(getattr(self, name)))
            ts, lon, lat = self.ts, self.lon, self.lat
        if not (math.isfinite(ts) and math.isfinite(lon) and math.isfinite(lat)):
            bad = next(
                n for n, v in (("ts", ts), ("lon", lon), ("lat", lat)) if not math.isfinite(v)
            )
            raise ValueError(f"TrackFix {self.msg_id!r}: {bad} must be finite")
        if acc is not None and type(acc) is not float:
            object.__setattr__(self, "acc_m", float(acc))
        projects = self.project_ids
        n = len(projects)
        # two covering projects, already in order, is the common case past one
        if type(projects) is not tuple or (n > 1 and not (n == 2 and projects[0] < projects[1])):
            object.__setattr__(self, "project_ids", tuple(sorted(set(projects))))

    @property
    def key(self) -> tuple[float, str]:
        """Event-time order: ts, then msg_id."""
        return (self.ts, self.msg_id)

    @property
    def kept(self) -> KeptFix:
        """This fix as a track keeps it."""
        projects = _shared(self.project_ids) if self.project_ids else ()
        return (self.ts, self.msg_id, self.lon, self.lat, self.acc_m, projects)

    @classmethod
    def from_kept(cls, k: KeptFix) -> TrackFix:
        ts, msg_id, lon, lat, acc_m, project_ids = k
        return cls(msg_id, ts, lon, lat, acc_m, project_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "msg_id": self.msg_id,
            "ts": self.ts,
            "lon": self.lon,
            "lat": self.lat,
            "acc_m": self.acc_m,
            "project_ids": list(self.project_ids),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrackFix:
        return cls(
            msg_id=str(d["msg_id"]),
            ts=float(d["ts"]),
            lon=float(d["lon"]),
            lat=float(d["lat"]),
            acc_m=None if d.get("acc_m") is None else float(d["acc_m"]),
            project_ids=tuple(d.get("project_ids") or ()),
        )


# A window is kept in two parts: a tuple shared from state to state (`_settled`, of which the
# first `_gone` have left the window) and a short tuple of the newest fixes (`_recent`). A new
# fix at the end makes a new `_recent`, not a new tuple of the whole window; once `_recent`
# holds more than RECENT_MAX fixes a new `_settled` takes them, all but the last batch's. The
# young collections scan what a batch made, and an hour's window of 360 fixes, copied for
# every fix, was most of what they scanned (docs/streams.md).
RECENT_MAX = 16


class TrackState:
    """Serialisable, immutable state of one engineer's track (see module docstring): its
    fixes as kept (`KeptFix`); `anchor` and `window` give them as `TrackFix`, built on each
    read. Equal when the engineer, the anchor and the window are."""

    __slots__ = ("engineer_id", "kept_anchor", "_settled", "_gone", "_recent", "_msg_ids")

    engineer_id: str
    kept_anchor: KeptFix | None
    _settled: tuple[KeptFix, ...]
    _gone: int
    _recent: tuple[KeptFix, ...]
    # the msg_ids of the anchor and the window, made once per state and carried on by
    # `advance`: a phone reporting every 10 s has 360 fixes in an hour's window, and each new
    # fix is checked against them. A dict of strings to None, which (unlike a set) the
    # collector never tracks.
    _msg_ids: dict[str, None] | None

    def __init__(
        self,
        engineer_id: str = "",
        kept_anchor: KeptFix | None = None,
        kept_window: tuple[KeptFix, ...] = (),
    ) -> None:
        self._set(engineer_id, kept_anchor, tuple(kept_window), 0, (), None)

    def _set(
        self,
        engineer_id: str,
        kept_anchor: KeptFix | None,
        settled: tuple[KeptFix, ...],
        gone: int,
        recent: tuple[KeptFix, ...],
        msg_ids: dict[str, None] | None,
    ) -> None:
        for name, value in (
            ("engineer_id", engineer_id),
            ("kept_anchor", kept_anchor),
            ("_settled", settled),
            ("_gone", gone),
            ("_recent", recent),
            ("_msg_ids", msg_ids),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"TrackState is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"TrackState is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[TrackState], tuple[Any, ...]]:
        """Pickled and copied as its engineer, anchor and window."""
        return (TrackState, (self.engineer_id, self.kept_anchor, self.kept_window))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrackState):
            return NotImplemented
        return (self.engineer_id, self.kept_anchor, self.kept_window) == (
            other.engineer_id,
            other.kept_anchor,
            other.kept_window,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"TrackState(engineer_id={self.engineer_id!r}, kept_anchor={self.kept_anchor!r}, "
            f"kept_window={self.kept_window!r})"
        )

    @classmethod
    def of(
        cls, engineer_id: str, anchor: TrackFix | None, window: Iterable[TrackFix]
    ) -> TrackState:
        """A state of `anchor` and `window` (in event-time order)."""
        return cls(
            engineer_id,
            anchor.kept if anchor is not None else None,
            tuple(f.kept for f in window),
        )

    @property
    def kept_window(self) -> tuple[KeptFix, ...]:
        """The window's fixes as kept, in event-time order (made on each read)."""
        settled = self._settled[self._gone :] if self._gone else self._settled
        return settled + self._recent if self._recent else settled

    @property
    def kept_newest(self) -> KeptFix | None:
        """The newest fix of the window, None when the window is empty."""
        if self._recent:
            return self._recent[-1]
        return self._settled[-1] if len(self._settled) > self._gone else None

    @property
    def anchor(self) -> TrackFix | None:
        """The last accepted fix before the window."""
        k = self.kept_anchor
        return TrackFix.from_kept(k) if k is not None else None

    @property
    def window(self) -> tuple[TrackFix, ...]:
        """The accepted fixes within the lateness of the newest, in event-time order."""
        return tuple(TrackFix.from_kept(k) for k in self.kept_window)

    def msg_ids(self) -> AbstractSet[str]:
        """The msg_ids of the anchor and of the window's fixes."""
        return self._ids().keys()

    def _ids(self) -> dict[str, None]:
        ids = self._msg_ids
        if ids is None:
            ids = dict.fromkeys(k[1] for k in self.kept_window)
            if self.kept_anchor is not None:
                ids[self.kept_anchor[1]] = None
            object.__setattr__(self, "_msg_ids", ids)
        return ids

    @property
    def newest_ts(self) -> float | None:
        """Latest accepted event time, or None before the first fix."""
        newest = self.kept_newest or self.kept_anchor
        return newest[0] if newest is not None else None

    @property
    def on_site(self) -> frozenset[str]:
        """Projects the engineer is on site at after the latest fix (event time)."""
        newest = self.kept_newest or self.kept_anchor
        return frozenset(newest[5]) if newest is not None else frozenset()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``on_site`` included for readers; ignored by ``from_dict``)."""
        anchor = self.anchor
        return {
            "version": STATE_VERSION,
            "engineer_id": self.engineer_id,
            "anchor": anchor.to_dict() if anchor is not None else None,
            "window": [f.to_dict() for f in self.window],
            "on_site": sorted(self.on_site),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrackState:
        if d.get("version", STATE_VERSION) != STATE_VERSION:
            raise ValueError(f"unsupported TrackState version {d.get('version')!r}")
        anchor = d.get("anchor")
        window = sorted(
            (TrackFix.from_dict(f).kept for f in d.get("window") or ()), key=_event_time
        )
        return cls(
            engineer_id=str(d.get("engineer_id", "")),
            kept_anchor=TrackFix.from_dict(anchor).kept if anchor else None,
            kept_window=tuple(window),
        )


# a kept fix's (ts, msg_id): its place in event time
_event_time = itemgetter(0, 1)


_SPHERE_MARGIN = 0.99  # the mean-radius sphere is within 0.6 % of the ellipsoid


def _pair_events(
    engineer_id: str,
    a: KeptFix | None,
    b: KeptFix,
    max_speed_kmh: float,
    min_jump_m: float,
) -> list[Event]:
    """Events triggered by fix ``b`` whose predecessor in event time is ``a``.

    Every event depends only on such a pair, which is what makes late fixes cheap: slotting
    ``x`` between ``a`` and ``b`` retracts the events of (a, b) and adds (a, x), (x, b).
    """
    out: list[Event] = []
    b_ts, b_id, b_lon, b_lat, _, b_projects = b
    a_projects = a[5] if a is not None else ()
    if a_projects != b_projects:  # both sorted and without repeats: equal as sets
        before, now = frozenset(a_projects), frozenset(b_projects)
        out.extend(SiteEntered(engineer_id, p, b_ts, b_id) for p in sorted(now - before))
        out.extend(SiteExited(engineer_id, p, b_ts, b_id) for p in sorted(before - now))
    if a is not None:
        a_ts, a_id, a_lon, a_lat, _, _ = a
        # cheap spherical pre-check; the exact geodesic only when it could matter
        if sphere_distance_m(a_lon, a_lat, b_lon, b_lat) >= min_jump_m * _SPHERE_MARGIN:
            d = float(geodesic_distance_m(a_lon, a_lat, b_lon, b_lat))
            if d > min_jump_m:
                dt = b_ts - a_ts
                speed = math.inf if dt <= 0 else d / 1000.0 / (dt / 3600.0)
                if speed > max_speed_kmh:
                    out.append(ImpossibleTravel(engineer_id, a_id, b_id, d, speed, b_ts, a_ts))
    return out


def advance(
    state: TrackState,
    fixes: Iterable[TrackFix],
    *,
    max_accuracy_m: float = 100.0,
    max_speed_kmh: float = 300.0,
    min_jump_m: float = 5000.0,
    allowed_lateness_s: float = 3600.0,
) -> tuple[TrackState, TrackOutput]:
    """Apply ``fixes`` (in arrival order) to ``state``; return the new state and output.

    Equivalent to applying them one at a time; ``events``/``retracted`` are netted over
    the batch (an event both produced and invalidated within the batch is not reported).
    Cost per fix: O(log W) search plus an O(W) list insert, W = fixes in the window, and per
    call an O(W) copy of the window and of its msg_ids (short-lived: the collector never
    sees them).
    """
    out = TrackOutput()
    eng = state.engineer_id
    anchor = state.kept_anchor
    # the settled part stays shared while fixes only leave its front and land after it
    settled, gone = state._settled, state._gone  # noqa: SLF001
    window = list(settled)  # the window, copied once from its parts
    del window[:gone]
    window += state._recent  # noqa: SLF001
    settled_at_front = len(settled) - gone  # how many of `window`'s first fixes it holds
    seen: dict[str, None] | None = None  # the state's msg_ids, made on first need
    added: set[str] = set()  # accepted by this call
    left: list[str] = []  # msg_ids the state no longer holds (the window slid past them)
    emitted: dict[str, Event] = {}
    retracted: set[str] = set()

    def retract(e: Event) -> None:
        if e.id in emitted:
            del emitted[e.id]
        else:
            retracted.add(e.id)

    def emit(e: Event) -> None:
        if e.id in retracted:
            retracted.discard(e.id)  # same id, same pair: the very same event
        else:
            emitted[e.id] = e

    for fix in fixes:
        if fix.acc_m is not None and not (fix.acc_m <= max_accuracy_m):
            out.ignored_inaccurate.append(fix.msg_id)
            continue
        if seen is None:
            seen = state._ids()
        if fix.msg_id in seen or fix.msg_id in added:
            out.duplicates.append(fix.msg_id)
            continue
        f = fix.kept
        newest = window[-1][0] if window else (anchor[0] if anchor is not None else None)
        # `f <= anchor` is event-time order: f's msg_id is not the anchor's
        if (newest is not None and f[0] < newest - allowed_lateness_s) or (
            anchor is not None and f <= anchor
        ):
            out.too_late.append(fix.msg_id)
            continue
        added.add(fix.msg_id)
        i = bisect.bisect_right(window, f)
        if i < settled_at_front:  # a late fix inside the settled part: it is made anew
            settled, gone, settled_at_front = (), 0, 0
        a = window[i - 1] if i > 0 else anchor
        b = window[i] if i < len(window) else None
        if b is not None:
            for e in _pair_events(eng, a, b, max_speed_kmh, min_jump_m):
                retract(e)
            for e in _pair_events(eng, f, b, max_speed_kmh, min_jump_m):
                emit(e)
        for e in _pair_events(eng, a, f, max_speed_kmh, min_jump_m):
            emit(e)
        window.insert(i, f)
        # slide: fixes older than the lateness limit leave; their events are final
        cutoff = window[-1][0] - allowed_lateness_s
        n_out = bisect.bisect_left(window, (cutoff,))  # (cutoff,) sorts before (cutoff, ...)
        if n_out:
            if anchor is not None:
                left.append(anchor[1])
            left.extend(w[1] for w in window[: n_out - 1])
            anchor = window[n_out - 1]
            del window[:n_out]
            moved = min(n_out, settled_at_front)
            gone += moved
            settled_at_front -= moved
    if not added:
        return state, out
    out.events = sorted(emitted.values(), key=lambda e: (e.ts, e.id))
    out.retracted = sorted(retracted)
    recent = window[settled_at_front:]
    # A new settled part once the recent one is full, or once most of the settled one left.
    # It leaves out this call's fixes (at the end, but for late ones): the fixes kept since
    # earlier batches are untracked already, so the collector untracks the new part at its
    # first collection instead of carrying it into the older generations.
    if len(recent) > RECENT_MAX or gone * 2 > len(settled):
        cut = max(len(window) - len(added), 0)
        settled, gone, recent = tuple(window[:cut]), 0, window[cut:]
    ids = dict(seen or ())
    ids.update(dict.fromkeys(added))
    for msg_id in left:
        ids.pop(msg_id, None)
    # else a msg_id was held twice: made again from the fixes when next asked for
    carried = ids if len(ids) == len(window) + (anchor is not None) else None
    new_state = TrackState.__new__(TrackState)
    new_state._set(eng, anchor, settled, gone, tuple(recent), carried)  # noqa: SLF001
    return new_state, out
