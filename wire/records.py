"""The internal records every ingest source is normalised to, and why a message is refused.

Every wire format (MQTT topics, OwnTracks HTTP, Traccar OsmAnd) decodes to one of four frozen
records. ``to_dict`` / ``from_dict`` turn them into JSON-safe dicts for Kafka (``canonical``
bytes travel as base64) and back; the round trip is exact.

A message that cannot be accepted raises :class:`Rejected` with a short machine ``reason``
(one of :class:`Reason`) and a ``message`` a person can act on.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from operator import attrgetter
from typing import Any, TypeAlias

import orjson

__all__ = [
    "REASON_DESCRIPTIONS",
    "Attachment",
    "Fix",
    "OwnTracksEvent",
    "Reason",
    "Record",
    "Rejected",
    "SupervisionLog",
    "Telemetry",
    "from_dict",
    "to_dict",
    "to_json",
]


class Reason(StrEnum):
    """Every reason code a message can be rejected with (``Rejected.reason``)."""

    BAD_JSON = "bad_json"
    BAD_ENCODING = "bad_encoding"
    BAD_TEXT = "bad_text"
    TOO_LARGE = "too_large"
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"
    BAD_VALUE = "bad_value"
    BAD_TIMESTAMP = "bad_timestamp"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TS = "future_ts"
    UNKNOWN_TOPIC = "unknown_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    IGNORED_TYPE = "ignored_type"
    UNKNOWN_IDENTITY = "unknown_identity"
    RETIRED = "retired"
    UNAUTHENTICATED = "unauthenticated"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    BAD_MAC = "bad_mac"
    REPLAY = "replay"
    BAD_FILE = "bad_file"
    INTERNAL_ERROR = "internal_error"


REASON_DESCRIPTIONS: dict[str, str] = {
    Reason.BAD_JSON: "The payload is not one JSON object (truncated, malformed, NaN/Infinity "
    "literals, nested deeper than allowed, or not an object at the top).",
    Reason.BAD_ENCODING: "The payload is not valid UTF-8 (or holds unpaired surrogates).",
    Reason.BAD_TEXT: "A text (id, msg_id, name, free text, key) holds a control character "
    "(NUL included; free text may hold TAB, LF and CR), a lone surrogate or U+FFFE/U+FFFF.",
    Reason.TOO_LARGE: "The payload is larger than 64 KiB.",
    Reason.MISSING_FIELD: "A required field is absent, null or empty.",
    Reason.BAD_TYPE: "A field has the wrong JSON type (a string or boolean where a number is "
    "required, NaN/Infinity, an object where a string is required ...).",
    Reason.BAD_VALUE: "A field has a value outside its vocabulary (unknown crs or kind).",
    Reason.BAD_TIMESTAMP: "A timestamp string is neither epoch digits nor ISO-8601.",
    Reason.OUT_OF_RANGE: "A number is outside its range (lat -90..90, lon -180..180, accuracy "
    ">= 0, timestamps after 2000-01-01, ...).",
    Reason.FUTURE_TS: "The timestamp is more than 300 s ahead of the receiver's clock.",
    Reason.UNKNOWN_TOPIC: "The MQTT topic is not one SiteWatch ingests.",
    Reason.TOPIC_MISMATCH: "An id in the body differs from the id in the topic.",
    Reason.IGNORED_TYPE: "A well-formed message of a type SiteWatch does not use (OwnTracks "
    "card, waypoint, cmd ...). Logged, not an error of the sender.",
    Reason.UNKNOWN_IDENTITY: "The engineer or device is not registered.",
    Reason.RETIRED: "The engineer or device was retired (DELETE /api/engineers/{id} or "
    "/api/devices/{id}); it is kept for history and takes no new messages.",
    Reason.UNAUTHENTICATED: "An HTTP ingest request without valid credentials (OwnTracks HTTP: "
    "Basic auth with the engineer id and its MQTT password).",
    Reason.UNSIGNED: "The identity has a key but the message carries no sig / mac.",
    Reason.BAD_SIGNATURE: "The SM2 signature does not verify with the engineer's public key.",
    Reason.BAD_MAC: "The SM3-HMAC does not match with the device's key.",
    Reason.REPLAY: "A message with this msg_id was already accepted.",
    Reason.BAD_FILE: "A practice record's file is not what it must be: not JPEG, PNG or PDF by "
    "its own bytes, unreadable, too large in bytes, pixels or pages, a PDF that would inflate "
    "past the limit, or not the file the record names (POST /records).",
    Reason.INTERNAL_ERROR: "SiteWatch failed on this message (a bug, logged with its "
    "traceback); it is kept here instead of stopping the bridge on every redelivery.",
}


class Rejected(Exception):  # noqa: N818 - the name is part of the ingest API
    """A message that cannot be accepted.

    ``reason`` is a short machine code (a :class:`Reason` value), ``message`` a sentence a
    person can act on.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = str(reason)
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rejected):
            return NotImplemented
        return (self.reason, self.message) == (other.reason, other.message)

    def __hash__(self) -> int:
        return hash((self.reason, self.message))


@dataclass(frozen=True, slots=True)
class Fix:
    """One position of an engineer's phone, in WGS-84 after conversion."""

    msg_id: str
    engineer_id: str
    ts: float  # epoch seconds UTC
    lon: float  # WGS-84 after conversion
    lat: float
    acc_m: float | None
    kind: str  # 'position' | 'checkin' | 'checkout'
    source: str  # 'checkin' | 'owntracks' | 'osmand' | 'owntracks-http'
    speed_kmh: float | None = None
    battery: float | None = None  # percent 0..100
    crs: str = "wgs84"  # what the sender used
    canonical: bytes = b""  # canonical bytes of the original JSON (evidence chain, signature)
    sig: str | None = None  # hex SM2 signature as sent, if any


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One telemetry report of a site device."""

    msg_id: str
    device_id: str
    ts: float
    metrics: dict[str, float]
    lon: float | None
    lat: float | None
    canonical: bytes
    mac: str | None = None  # hex SM3-HMAC as sent, if any
    crs: str = "wgs84"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file of a practice record, named by its SM3 (it is stored under that name)."""

    sm3: str  # 64 lowercase hex
    type: str  # image/jpeg | image/png | application/pdf
    bytes: int


@dataclass(frozen=True, slots=True)
class SupervisionLog:
    """A practice record written on site (CONTRACT §6.4): a supervision log (监理日志) by
    default, or a side-station record, inspection, notice or stop-work order; its files are
    named in the signed JSON by their SM3, so the evidence chain covers them."""

    msg_id: str
    engineer_id: str
    project_id: str
    ts: float
    lon: float
    lat: float
    text: str
    canonical: bytes
    sig: str | None = None
    crs: str = "wgs84"
    kind: str = "log"
    files: tuple[Attachment, ...] = ()
    # what the receiver noticed and the sender did not sign (a photo's EXIF far from the record)
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OwnTracksEvent:
    """An OwnTracks ``transition`` (region enter/leave) or ``lwt`` (connection lost)."""

    msg_id: str
    engineer_id: str
    ts: float
    type: str  # 'transition' | 'lwt'
    payload: dict[str, Any] = field(default_factory=dict)
    canonical: bytes = b""
    sig: str | None = None


Record: TypeAlias = Fix | Telemetry | SupervisionLog | OwnTracksEvent

_TAGS: dict[type, str] = {
    Fix: "fix",
    Telemetry: "telemetry",
    SupervisionLog: "log",
    OwnTracksEvent: "ot_event",
}
_CLASSES: dict[str, type] = {v: k for k, v in _TAGS.items()}
_FIELDS: dict[type, tuple[str, ...]] = {c: tuple(f.name for f in fields(c)) for c in _TAGS}


# Per field of a record class, how from_dict reads it back (None: as it is in the JSON).
def _canonical_in(name: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("canonical must be base64 text")
    return base64.b64decode(value.encode("ascii"), validate=True)


def _metrics_in(name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError("metrics must be an object")
    return {str(k): float(v) for k, v in value.items()}


def _files_in(name: str, value: Any) -> tuple[Attachment, ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError("files must be a list of objects")
    try:
        return tuple(Attachment(str(v["sm3"]), str(v["type"]), int(v["bytes"])) for v in value)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"bad file entry: {exc!r}") from exc


def _flags_in(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("flags must be a list")
    return tuple(str(v) for v in value)


def _finite_in(name: str, value: Any) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite")
    return value  # type: ignore[no-any-return]


def _finite_or_none_in(name: str, value: Any) -> float | None:
    return None if value is None else _finite_in(name, value)


_FIELD_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "canonical": _canonical_in,
    "metrics": _metrics_in,
    "files": _files_in,
    "flags": _flags_in,
    "ts": _finite_in,
    "lon": _finite_or_none_in,
    "lat": _finite_or_none_in,
}
_PARSERS: dict[type, tuple[tuple[str, Callable[[str, Any], Any] | None], ...]] = {
    c: tuple((name, _FIELD_PARSERS.get(name)) for name in names) for c, names in _FIELDS.items()
}
_GET_FIELDS = {c: attrgetter(*names) for c, names in _FIELDS.items()}
_PLAIN = frozenset({str, float, int, bool})


def to_dict(record: Record) -> dict[str, Any]:
    """JSON-safe dict of ``record``: ``{"record": tag, ...fields}``, bytes as base64."""
    cls = type(record)
    tag = _TAGS.get(cls)
    if tag is None:
        raise TypeError(f"not an ingest record: {cls.__name__}")
    out: dict[str, Any] = {"record": tag}
    # all fields in one call, and the plain ones (most) without the checks below: this
    # runs for every record in the bridge
    for name, value in zip(_FIELDS[cls], _GET_FIELDS[cls](record), strict=True):
        if value is None or type(value) in _PLAIN:
            pass
        elif isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, tuple):
            value = [
                {"sm3": v.sm3, "type": v.type, "bytes": v.bytes} if isinstance(v, Attachment) else v
                for v in value
            ]
        out[name] = value
    return out


def to_json(record: Record, **extra: Any) -> bytes:
    """The JSON of ``{**to_dict(record), **extra}`` (the gate adds ``received_at``)."""
    return orjson.dumps({**to_dict(record), **extra})


def from_dict(d: dict[str, Any]) -> Record:
    """Inverse of :func:`to_dict`. Raises ``ValueError`` on anything it did not produce."""
    if not isinstance(d, dict):
        raise ValueError("record dict expected")
    cls = _CLASSES.get(d.get("record"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown record tag {d.get('record')!r}")
    kwargs: dict[str, Any] = {}
    for name, parse in _PARSERS[cls]:
        if name in d:
            value = d[name]
            kwargs[name] = value if parse is None else parse(name, value)
    try:
        return cls(**kwargs)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise ValueError(f"bad {cls.__name__} dict: {exc}") from exc
