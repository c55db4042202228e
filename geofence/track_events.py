"""What `geofence.tracking.advance` reports: site entries and exits, impossible travel, and
the output of one call. Each event belongs to the pair of consecutive fixes that made it
(geofence.tracking's module docstring); its `id` names that pair."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "Event",
    "ImpossibleTravel",
    "SiteEntered",
    "SiteExited",
    "TrackOutput",
    "event_from_dict",
]


@dataclass(frozen=True)
class _SiteCrossing:
    """An engineer crossing a project's boundary at one fix; the subclass says which way."""

    TYPE: ClassVar[str]
    ID_PREFIX: ClassVar[str]

    engineer_id: str
    project_id: str
    ts: float
    msg_id: str

    @property
    def id(self) -> str:
        return f"{self.ID_PREFIX}:{self.project_id}:{self.msg_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.TYPE,
            "id": self.id,
            "engineer_id": self.engineer_id,
            "project_id": self.project_id,
            "ts": self.ts,
            "msg_id": self.msg_id,
        }


@dataclass(frozen=True)
class SiteEntered(_SiteCrossing):
    TYPE = "site_entered"
    ID_PREFIX = "enter"


@dataclass(frozen=True)
class SiteExited(_SiteCrossing):
    TYPE = "site_exited"
    ID_PREFIX = "exit"


@dataclass(frozen=True)
class ImpossibleTravel:
    """``speed_kmh`` is ``inf`` for equal timestamps (``None`` in ``to_dict``)."""

    engineer_id: str
    from_msg_id: str
    to_msg_id: str
    distance_m: float
    speed_kmh: float
    ts: float
    from_ts: float

    @property
    def id(self) -> str:
        return f"travel:{self.from_msg_id}:{self.to_msg_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "impossible_travel",
            "id": self.id,
            "engineer_id": self.engineer_id,
            "from_msg_id": self.from_msg_id,
            "to_msg_id": self.to_msg_id,
            "distance_m": self.distance_m,
            "speed_kmh": self.speed_kmh if math.isfinite(self.speed_kmh) else None,
            "ts": self.ts,
            "from_ts": self.from_ts,
        }


Event = SiteEntered | SiteExited | ImpossibleTravel


def event_from_dict(d: Mapping[str, Any]) -> Event:
    """Inverse of the events' ``to_dict``."""
    kind = d.get("type")
    crossings: dict[str, type[SiteEntered] | type[SiteExited]] = {
        SiteEntered.TYPE: SiteEntered,
        SiteExited.TYPE: SiteExited,
    }
    crossing = crossings.get(str(kind))
    if crossing is not None:
        return crossing(
            str(d["engineer_id"]), str(d["project_id"]), float(d["ts"]), str(d["msg_id"])
        )
    if kind == "impossible_travel":
        speed = d.get("speed_kmh")
        return ImpossibleTravel(
            engineer_id=str(d["engineer_id"]),
            from_msg_id=str(d["from_msg_id"]),
            to_msg_id=str(d["to_msg_id"]),
            distance_m=float(d["distance_m"]),
            speed_kmh=math.inf if speed is None else float(speed),
            ts=float(d["ts"]),
            from_ts=float(d["from_ts"]),
        )
    raise ValueError(f"unknown event type {kind!r}")


@dataclass
class TrackOutput:
    """What one ``advance`` produced. ``events`` are sorted by (ts, id)."""

    events: list[Event] = field(default_factory=list)
    retracted: list[str] = field(default_factory=list)
    too_late: list[str] = field(default_factory=list)
    ignored_inaccurate: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": [e.to_dict() for e in self.events],
            "retracted": list(self.retracted),
            "too_late": list(self.too_late),
            "ignored_inaccurate": list(self.ignored_inaccurate),
            "duplicates": list(self.duplicates),
        }
