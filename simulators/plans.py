"""A scenario's configuration, the plans of its engineers and devices, the simulated facts
the ground truth is computed from, and the messages to publish (simulators.scenario)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from simulators.world import Site

LOG_TEXTS = (
    "巡视检查：钢筋绑扎符合设计要求，已签认隐蔽工程验收记录。",
    "旁站监理：C30混凝土浇筑，坍落度抽检合格，试块已留置。",
    "基坑监测数据正常，支护结构无异常变形。",
    "检查塔吊安全装置，限位器有效，司机持证上岗。",
    "模板支撑体系验收，立杆间距及扫地杆设置符合方案。",
    "督促施工单位整改临边防护缺失问题，已下发监理通知单。",
    "主体结构实测实量，垂直度、平整度满足规范要求。",
    "审核进场材料质量证明文件，见证取样送检。",
)
OWNTRACKS_DEVICE = "phone"


@dataclass
class Config:
    scenario: str = "week"
    engineers: int = 50
    devices: int = 20
    days: int = 7
    seed: int = 1
    start: dt.datetime | None = None  # local midnight; default: days + 1 days ago
    timezone: str = "Asia/Shanghai"
    fix_interval_s: tuple[float, float] = (300.0, 600.0)
    device_interval_s: int = 900
    allowed_lateness_s: float = 3600.0
    # violations and imperfections
    violations: bool = True
    p_spoofer: float = 0.08  # share of engineers who spoof their location once
    p_missing_log: float = 0.07  # per site visit
    p_gap: float = 0.3  # per day: one reporting gap of 20-100 min
    p_resend: float = 0.5  # after a gap: the last fixes are sent again (duplicates)
    p_bad_fix: float = 0.04  # accuracy 150-900 m
    p_low_battery: float = 0.08  # per day: starts with 15-35 %
    devices_per_site: int = 3  # at most; more sites are drawn when needed
    p_outage: float = 0.35  # share of devices with one outage of 4-16 report intervals
    p_missed_reading: float = 0.01  # a single reading lost (no alert: 2 intervals)
    p_excursion_event: float = 0.6  # devices with excursion events
    dead_devices: int = 0  # devices that stop for good on the last day

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def start_local(self, now: dt.datetime | None = None) -> dt.datetime:
        if self.start is not None:
            return self.start.astimezone(self.tz)
        today = (now or dt.datetime.now(dt.UTC)).astimezone(self.tz).date()
        first = today - dt.timedelta(days=self.days + 1)
        return dt.datetime.combine(first, dt.time(0), tzinfo=self.tz)


SCENARIOS: dict[str, dict[str, Any]] = {
    "week": {"engineers": 50, "devices": 20, "days": 7},
    "smoke": {"engineers": 8, "devices": 4, "days": 2},
    "day": {"engineers": 20, "devices": 8, "days": 1},
    "clean": {"engineers": 30, "devices": 10, "days": 3, "violations": False},
    "city": {"engineers": 200, "devices": 60, "days": 7},
    # an investigation's quarter: few engineers, every day, for the dossier
    "quarter": {"engineers": 8, "devices": 2, "days": 88},
}

ROLE_SHARES = (  # (role, share of engineers)
    ("local_sz", 0.45),
    ("local_gz", 0.15),
    ("guest_filed", 0.10),
    ("guest_expiring", 0.05),
    ("guest_late_filing", 0.03),
    ("guest_unfiled", 0.07),
    ("visitor_unfiled", 0.06),
    ("visitor_filed", 0.05),
    ("visitor_hsr", 0.04),
)
VIOLATION_ROLES = {
    "guest_expiring",
    "guest_late_filing",
    "guest_unfiled",
    "visitor_unfiled",
    "visitor_hsr",
}


def role_counts(n: int, violations: bool) -> list[str]:
    shares = [(r, s) for r, s in ROLE_SHARES if violations or r not in VIOLATION_ROLES]
    total = sum(s for _, s in shares)
    raw = [(r, n * s / total) for r, s in shares]
    counts = {r: int(x) for r, x in raw}
    if n >= 20:  # every role at least once in a scenario of some size
        for r, _ in raw:
            counts[r] = max(counts[r], 1)
    left = n - sum(counts.values())
    for r, _x in sorted(raw, key=lambda rx: rx[1] - int(rx[1]), reverse=True):
        if left <= 0:
            break
        counts[r] += 1
        left -= 1
    while sum(counts.values()) > n:  # tiny scenarios: trim the largest
        big = max(counts, key=lambda r: counts[r])
        counts[big] -= 1
    out = [r for r, _ in raw for _ in range(counts[r])]
    return out


@dataclass
class Filing:
    region_code: str
    valid_from: dt.date
    valid_to: dt.date
    project_id: str | None = None

    def body(self, engineer_id: str) -> dict[str, Any]:
        d: dict[str, Any] = {
            "engineer_id": engineer_id,
            "region_code": self.region_code,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat(),
        }
        if self.project_id:
            d["project_id"] = self.project_id
        return d


@dataclass
class EngineerPlan:
    id: str
    name: str
    role: str
    registered_region: str
    home: tuple[float, float]
    primary: Site
    secondary: Site | None
    visit: tuple[int, Site] | None  # (day index, site in another city)
    phone: str  # 'checkin' | 'owntracks'
    crs: str  # checkin phones: 'wgs84' | 'gcj02'
    ts_format: str  # 's' | 'ms' | 'iso'
    filings: list[Filing] = field(default_factory=list)
    spoof_day: int | None = None
    # the certificate is suspended from this local day on (practice_while_suspended)
    suspended_from: dt.date | None = None
    # a chief who stops coming (chief_absent): nothing is sent from this local day on
    stops_coming_from: dt.date | None = None
    training: TrainingPlan | None = None  # an offline training this engineer goes to
    tid: str = "SW"
    sm2_private_key: str | None = None  # signs every check-in and log (CONTRACT section 3)
    sm2_public_key: str | None = None


@dataclass
class TrainingPlan:
    """An offline training (CONTRACT §6.3): a place that is no project, a morning's window,
    and how long each invited engineer stays inside from its start (some leave early)."""

    id: str
    place: Site
    day: int  # day index in the scenario
    starts_at: dt.datetime
    ends_at: dt.datetime
    hours: float
    stays_s: dict[str, float] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "type": "Feature",
            "properties": {
                "id": self.id,
                "name": f"继续教育现场培训 {self.starts_at:%m-%d}",
                "starts_at": self.starts_at.isoformat(),
                "ends_at": self.ends_at.isoformat(),
                "hours": self.hours,
            },
            "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in self.place.ring]]},
        }


@dataclass
class DevicePlan:
    id: str
    site: Site
    kind: str
    interval_s: int
    thresholds: dict[str, dict[str, float]]
    position: tuple[float, float]
    hmac_key: str = ""  # hex; sent at registration, MACs every reading
    outages: list[tuple[float, float]] = field(default_factory=list)
    dead_from: float | None = None


@dataclass(frozen=True)
class FixFact:
    engineer_id: str
    msg_id: str  # as the monitor knows it (OwnTracks ids are derived, CONTRACT section 3)
    ts: float
    lon: float  # WGS-84, as the phone measured it (before any GCJ-02 encoding)
    lat: float
    acc: float
    source: str
    spoof: bool = False
    kind: str = "position"  # checkin | checkout | position (check-in phones; CONTRACT §6.5)


@dataclass(frozen=True)
class LogFact:
    engineer_id: str
    msg_id: str
    project_id: str
    ts: float
    lon: float
    lat: float


@dataclass(frozen=True)
class NoticePlan:
    """A rectification notice issued on site right after one of the engineer's logs (so its
    day is logged whatever the order it arrives in), with a deadline three days on; `closed`:
    the simulator closes it once it is open (after its deadline: every one goes overdue)."""

    log: LogFact
    closed: bool

    @property
    def msg_id(self) -> str:
        return f"{self.log.msg_id}-notice"

    @property
    def id(self) -> str:
        return f"{self.log.engineer_id}:{self.msg_id}"

    @property
    def ts(self) -> float:
        return self.log.ts + 60

    @property
    def deadline(self) -> float:
        return self.ts + 3 * 86400

    def record(self) -> dict[str, Any]:
        return {
            "msg_id": self.msg_id,
            "engineer_id": self.log.engineer_id,
            "project_id": self.log.project_id,
            "ts": self.ts,
            "lat": self.log.lat,
            "lon": self.log.lon,
            "kind": "notice",
            "text": "整改通知：临边防护栏杆缺失，限三日内整改完毕并报监理复查。",
            "severity": "high",
            "deadline": self.deadline,
            "responsible": "施工单位项目经理",
        }


@dataclass(frozen=True)
class ReadingFact:
    device_id: str
    msg_id: str
    ts: float
    metrics: dict[str, float]
    marker: bool = False  # the end-of-run marker excursion


@dataclass
class Message:
    ts: float  # when the phone / device sends it (simulated time): the publish order
    seq: int
    identity: str
    topic: str
    payload: bytes


@dataclass
class Scenario:
    config: Config
    prefix: str
    start: dt.datetime  # local midnight
    end: dt.datetime  # start + days
    closing_ts: float  # the engineers' last record (closes the last day for missing_log)
    sites: list[Site]
    engineers: list[EngineerPlan]
    devices: list[DevicePlan]
    fixes: list[FixFact]
    logs: list[LogFact]
    readings: list[ReadingFact]
    messages: list[Message]
    duplicates_sent: int = 0
    injected: dict[str, Any] = field(default_factory=dict)
    trainings: list[TrainingPlan] = field(default_factory=list)
    # per site: its engineers (primary or secondary), the first its chief, and the days a
    # month the chief must be present (chief_absent)
    members: dict[str, list[str]] = field(default_factory=dict)
    required_days: dict[str, int] = field(default_factory=dict)
    notices: list[NoticePlan] = field(default_factory=list)
