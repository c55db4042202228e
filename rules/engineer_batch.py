"""One batch of engineer records (fixes, supervision logs, OwnTracks events) turned into rows to
persist, alerts, day checks for `missing_log` and messages to push live. Pure: the worker does
the I/O. Rules (CONTRACT section 4) decided here: geofencing (accuracy, boundary included),
`cross_region_unfiled`, `practice_while_suspended` (CONTRACT §6.5, `rules.certificate`),
`impossible_travel` (via `geofence.tracking`), transitions, and the engineer's stream time
(`rules.day_close`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from geofence.codes import city_of, code_covers
from geofence.tracking import (
    ImpossibleTravel,
    SiteEntered,
    SiteExited,
    TrackFix,
    TrackState,
    advance,
)
from rules.alerts import alert, point_wkt, utc
from rules.certificate import Certificate
from rules.day_close import DayCheck, advance_clock
from rules.engineer_state import EngineerState
from rules.fences import Fences
from wire.records import Fix, OwnTracksEvent, Record, SupervisionLog


class Thresholds(Protocol):
    """What the engineer rules read from the deployment's settings (config.Settings has it)."""

    @property
    def timezone(self) -> str: ...
    @property
    def allowed_lateness_s(self) -> float: ...
    @property
    def max_accuracy_m(self) -> float: ...
    @property
    def max_speed_kmh(self) -> float: ...
    @property
    def min_jump_m(self) -> float: ...


@dataclass(frozen=True)
class EngineerFacts:
    """What the rules need to know about an engineer, read from the registry."""

    registered_region: str
    filings: tuple[tuple[str, dt.date, dt.date, str | None], ...]  # region, from, to, project
    certificate: Certificate = field(default_factory=Certificate)

    def filed_for(self, region_code: str, day: dt.date) -> bool:
        """A filing whose region covers `region_code` (code prefix) and whose validity holds
        the local date `day` (both ends included). A filing's optional project id is
        informational: CONTRACT section 4 honours filings by region and date."""
        return any(
            _covers(code, region_code) and start <= day <= end
            for code, start, end, _project in self.filings
        )


def _covers(outer: str, inner: str) -> bool:
    try:
        return code_covers(outer, inner)
    except ValueError:
        return False


@functools.lru_cache(maxsize=4096)  # asked per fix and project, of a few hundred codes
def _same_city(a: str, b: str) -> bool:
    try:
        return city_of(a) == city_of(b)
    except ValueError:
        return False


@dataclass
class BatchOutput:
    fixes: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    ot_events: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    retracted: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    live: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, EngineerState] = field(default_factory=dict)
    day_checks: list[DayCheck] = field(default_factory=list)


def process_engineer_batch(
    records: Sequence[Record],
    *,
    fences: Fences,
    states: Mapping[str, EngineerState | None],
    facts: Mapping[str, EngineerFacts],
    settings: Thresholds,
) -> BatchOutput:
    tz = ZoneInfo(settings.timezone)
    out = BatchOutput()
    fixes = [r for r in records if isinstance(r, Fix)]
    event_ts: dict[str, list[float]] = defaultdict(list)  # every record moves stream time
    on_site_days: dict[str, set[dt.date]] = defaultdict(set)
    for r in records:
        event_ts[r.engineer_id].append(r.ts)  # type: ignore[union-attr]
        if isinstance(r, SupervisionLog):
            flags = _record_flags(r, fences)
            out.logs.append(
                {
                    "engineer_id": r.engineer_id,
                    "msg_id": r.msg_id,
                    "project_id": r.project_id,
                    "ts": utc(r.ts),
                    "local_date": utc(r.ts).astimezone(tz).date(),
                    "geom": point_wkt(r.lon, r.lat),
                    "text": r.text,
                    "kind": r.kind,
                    "files": [{"sm3": a.sm3, "type": a.type, "bytes": a.bytes} for a in r.files],
                    "flags": flags,
                }
            )
            out.live.append(  # CONTRACT §6.6: a new practice record, without its files
                {
                    "type": "record",
                    "id": f"{r.engineer_id}:{r.msg_id}",
                    "kind": r.kind,
                    "engineer_id": r.engineer_id,
                    "project_id": r.project_id,
                    "region_code": fences.project_region.get(r.project_id, ""),
                    "ts": utc(r.ts).isoformat(),
                    "lon": r.lon,
                    "lat": r.lat,
                    "text": r.text,
                    "files": len(r.files),
                    "flags": flags,
                }
            )
        elif isinstance(r, OwnTracksEvent):
            out.ot_events.append(
                {
                    "engineer_id": r.engineer_id,
                    "msg_id": r.msg_id,
                    "ts": utc(r.ts),
                    "type": r.type,
                    "payload": r.payload,
                }
            )

    per_engineer: dict[str, list[TrackFix]] = defaultdict(list)
    fix_region: dict[tuple[str, str], str] = {}
    if fixes:
        _geofence(out, fixes, fences, facts, settings, tz, per_engineer, on_site_days, fix_region)

    for engineer_id in event_ts:
        previous = states.get(engineer_id)
        state = previous or EngineerState(TrackState(engineer_id=engineer_id))
        track = state.track
        items = per_engineer.get(engineer_id)
        if items:
            track = _advance_track(
                out, engineer_id, track, items, fences, facts, fix_region, settings
            )
        clock, checks = advance_clock(
            engineer_id,
            state.clock,
            event_ts[engineer_id],
            on_site_days.get(engineer_id, ()),
            tz=tz,
            allowed_lateness_s=settings.allowed_lateness_s,
        )
        out.day_checks.extend(checks)
        # a track `advance` left alone is the same object: no window compared fix by fix
        if previous is None or track is not previous.track or clock != previous.clock:
            out.states[engineer_id] = EngineerState(track, clock)
    return out


def _record_flags(r: SupervisionLog, fences: Fences) -> list[str]:
    """The receiver's flags of a practice record, and `outside_project` when its position is
    not inside its project's boundary of that time (a project SiteWatch has: CONTRACT §6.4)."""
    flags = list(r.flags)
    known = r.project_id in fences.project_region
    if known and r.project_id not in fences.projects_covering(r.lon, r.lat, r.ts):
        flags.append("outside_project")
    return flags


def _geofence(
    out: BatchOutput,
    fixes: list[Fix],
    fences: Fences,
    facts: Mapping[str, EngineerFacts],
    settings: Thresholds,
    tz: ZoneInfo,
    per_engineer: dict[str, list[TrackFix]],
    on_site_days: dict[str, set[dt.date]],
    fix_region: dict[tuple[str, str], str],
) -> None:
    """Which projects cover each fix (vectorised), which region it is in; fix rows, live
    positions and `cross_region_unfiled`."""
    lon = np.fromiter((f.lon for f in fixes), np.float64, len(fixes))
    lat = np.fromiter((f.lat for f in fixes), np.float64, len(fixes))
    accurate = np.fromiter(
        (f.acc_m is None or f.acc_m <= settings.max_accuracy_m for f in fixes), bool, len(fixes)
    )
    point_idx, fence_idx = fences.projects.classify(lon, lat)
    on_site: list[list[str]] = [[] for _ in fixes]
    for p, i in zip(point_idx.tolist(), fence_idx.tolist(), strict=True):
        if accurate[p]:
            project_id = fences.project_at(i, fixes[p].ts)
            if project_id is not None:
                on_site[p].append(project_id)
    district_arr, city_arr, _provinces = fences.regions.locate(lon, lat)
    districts, cities = district_arr.tolist(), city_arr.tolist()  # lists: cheaper per item

    for k, f in enumerate(fixes):
        at = utc(f.ts)
        local_date = at.astimezone(tz).date()
        projects = sorted(set(on_site[k]))
        region = str(
            districts[k]
            or cities[k]
            or (fences.project_region.get(projects[0], "") if projects else "")
        )
        fix_region[(f.engineer_id, f.msg_id)] = region
        out.fixes.append(
            {
                "engineer_id": f.engineer_id,
                "msg_id": f.msg_id,
                "ts": at,
                "local_date": local_date,
                "geom": point_wkt(f.lon, f.lat),
                "acc_m": f.acc_m,
                "kind": f.kind,
                "source": f.source,
                "speed_kmh": f.speed_kmh,
                "battery": f.battery,
                "project_ids": projects,
                "region_code": region,
            }
        )
        out.live.append(
            {
                "type": "position",
                "engineer_id": f.engineer_id,
                "msg_id": f.msg_id,
                "ts": at.isoformat(),
                "lon": f.lon,
                "lat": f.lat,
                "acc_m": f.acc_m,
                "project_ids": projects,
                "region_code": region,
                "battery": f.battery,
            }
        )
        if projects:
            on_site_days[f.engineer_id].add(local_date)
        per_engineer[f.engineer_id].append(
            TrackFix(f.msg_id, f.ts, f.lon, f.lat, f.acc_m, tuple(projects))
        )
        eng = facts.get(f.engineer_id)
        for pid in projects:
            _cross_region(out, f, pid, local_date, fences.project_region.get(pid, ""), eng)
            _while_suspended(out, f, pid, local_date, fences.project_region.get(pid, ""), eng)


def _advance_track(
    out: BatchOutput,
    engineer_id: str,
    track: TrackState,
    items: list[TrackFix],
    fences: Fences,
    facts: Mapping[str, EngineerFacts],
    fix_region: Mapping[tuple[str, str], str],
    settings: Thresholds,
) -> TrackState:
    """Transitions and `impossible_travel` of one engineer's fixes (geofence.tracking)."""
    new_track, result = advance(
        track,
        items,
        max_accuracy_m=settings.max_accuracy_m,
        max_speed_kmh=settings.max_speed_kmh,
        min_jump_m=settings.min_jump_m,
        allowed_lateness_s=settings.allowed_lateness_s,
    )
    out.retracted.extend(f"{engineer_id}:{rid}" for rid in result.retracted)
    # The fixes an event may name: this batch's, and the track's before and after it (a
    # jump's first fix may have left the window by the end of the batch: how the records were
    # batched must not change which site the alert names).
    known: dict[str, TrackFix] = {}
    if any(isinstance(ev, ImpossibleTravel) for ev in result.events):  # rare: built on demand
        known = {t.msg_id: t for t in items}
        for t in (new_track.anchor, *new_track.window, track.anchor, *track.window):
            if t is not None:
                known.setdefault(t.msg_id, t)
    for ev in result.events:
        if isinstance(ev, SiteEntered | SiteExited):
            kind = "enter" if isinstance(ev, SiteEntered) else "exit"
            region = fences.project_region.get(ev.project_id, "")
            out.transitions.append(
                {
                    "id": f"{engineer_id}:{ev.id}",
                    "engineer_id": engineer_id,
                    "project_id": ev.project_id,
                    "kind": kind,
                    "ts": utc(ev.ts),
                    "msg_id": ev.msg_id,
                }
            )
            out.live.append(
                {
                    "type": "transition",
                    "engineer_id": engineer_id,
                    "project_id": ev.project_id,
                    "kind": kind,
                    "ts": utc(ev.ts).isoformat(),
                    "region_code": region,
                }
            )
        elif isinstance(ev, ImpossibleTravel):
            project_id, region = _travel_site(ev, known, fences)
            region = (
                region
                or fix_region.get((engineer_id, ev.to_msg_id))
                or (facts[engineer_id].registered_region if engineer_id in facts else "")
            )
            out.alerts.append(
                alert(
                    f"impossible_travel:{engineer_id}:{ev.id}",
                    "impossible_travel",
                    region,
                    utc(ev.ts),
                    engineer_id=engineer_id,
                    project_id=project_id,
                    details={
                        "from_msg_id": ev.from_msg_id,
                        "to_msg_id": ev.to_msg_id,
                        "from_ts": utc(ev.from_ts).isoformat(),
                        "distance_m": round(ev.distance_m, 1),
                        "speed_kmh": None
                        if not np.isfinite(ev.speed_kmh)
                        else round(ev.speed_kmh, 1),
                    },
                )
            )
    return new_track


def _travel_site(
    ev: ImpossibleTravel, known: Mapping[str, TrackFix], fences: Fences
) -> tuple[str | None, str]:
    """The site an impossible jump is about: the site of the fix it lands on, else the site
    it left. Its region routes the alert; ("", None) when neither fix was on a site."""
    for msg_id in (ev.to_msg_id, ev.from_msg_id):
        t = known.get(msg_id)
        if t is not None and t.project_ids:
            pid = t.project_ids[0]
            return pid, fences.project_region.get(pid, "")
    return None, ""


def _cross_region(
    out: BatchOutput,
    f: Fix,
    project_id: str,
    day: dt.date,
    project_region: str,
    eng: EngineerFacts | None,
) -> None:
    """CONTRACT section 4: on site at P, P's city differs from the city of the engineer's
    registered region, and no filing covers P's region on the local date. Identity: engineer,
    project, local date."""
    if eng is None or not project_region or not eng.registered_region:
        return
    if _same_city(project_region, eng.registered_region):
        return
    if eng.filed_for(project_region, day):
        return
    details = {"registered_region": eng.registered_region, "project_region": project_region}
    out.alerts.append(
        _site_day_alert("cross_region_unfiled", f, project_id, day, project_region, details)
    )


def _while_suspended(
    out: BatchOutput,
    f: Fix,
    project_id: str,
    day: dt.date,
    project_region: str,
    eng: EngineerFacts | None,
) -> None:
    """CONTRACT §6.5: on site at P on a local date on which the certificate is not valid (its
    status history, or past its validity). Identity: engineer, project, local date."""
    if eng is None:
        return
    standing = eng.certificate.on(day)
    if standing.valid:
        return
    details = {"cert_status": standing.status, "decided_by": standing.decided_by}
    region = project_region or eng.registered_region
    out.alerts.append(
        _site_day_alert("practice_while_suspended", f, project_id, day, region, details)
    )


def _site_day_alert(
    type_: str, f: Fix, project_id: str, day: dt.date, region: str, details: dict[str, Any]
) -> dict[str, Any]:
    """An alert whose identity is engineer, project and local date, raised by fix `f`."""
    return alert(
        f"{type_}:{f.engineer_id}:{project_id}:{day.isoformat()}",
        type_,
        region,
        utc(f.ts),
        engineer_id=f.engineer_id,
        project_id=project_id,
        details={**details, "date": day.isoformat(), "msg_id": f.msg_id},
    )


__all__ = [
    "BatchOutput",
    "EngineerFacts",
    "EngineerState",
    "alert",
    "point_wkt",
    "process_engineer_batch",
    "utc",
]
