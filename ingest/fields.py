"""Field validation shared by the codecs: JSON parsing, numbers, timestamps, coordinates.

Every helper raises :class:`~ingest.records.Rejected` with a reason from
:class:`~ingest.records.Reason` and a message naming the field; nothing else escapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.gm import canonical_bytes
from ingest.records import Reason, Rejected

MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 16
MAX_FUTURE_S = 300.0
MIN_TS = 946_684_800.0  # 2000-01-01T00:00:00Z: anything earlier is a unit mistake
MS_THRESHOLD = 1e11  # numbers >= 10^11 are milliseconds (CONTRACT section 3)
MAX_ID_LEN = 128
MAX_ACC_M = 1_000_000.0
CRS_ALIASES = {
    "wgs84": "wgs84",
    "wgs-84": "wgs84",
    "epsg:4326": "wgs84",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
    "bd09ll": "bd09",
}


def reject(reason: Reason, message: str) -> Rejected:
    return Rejected(reason, message)


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """Decode a payload that must be one JSON object (UTF-8, <= 64 KiB, depth <= 16)."""
    if len(payload) > MAX_PAYLOAD:
        raise reject(Reason.TOO_LARGE, f"payload is {len(payload)} bytes; the limit is 64 KiB")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        # orjson also refuses invalid UTF-8: tell an encoding problem from a syntax one.
        try:
            bytes(payload).decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise reject(
                Reason.BAD_ENCODING,
                f"payload is not valid UTF-8 (byte {uexc.start}); send UTF-8 JSON",
            ) from None
        if "surrogate" in str(exc):
            raise reject(Reason.BAD_ENCODING, f"payload has an unpaired surrogate: {exc}") from None
        raise reject(Reason.BAD_JSON, f"payload is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise reject(Reason.BAD_JSON, f"payload must be a JSON object, got {type(obj).__name__}")
    for value in obj.values():  # nesting is rare: walk only when there is some
        if isinstance(value, dict | list):
            check_depth(obj)
            break
    return obj


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            raise reject(Reason.BAD_JSON, f"JSON nested deeper than {limit} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def canonical(obj: Mapping[str, Any]) -> bytes:
    try:
        return canonical_bytes(obj)
    except (ValueError, TypeError, RecursionError) as exc:
        raise reject(
            Reason.BAD_ENCODING, f"message cannot be put in canonical form: {exc}"
        ) from None


def as_number(value: Any, name: str) -> float:
    """A finite JSON number (not a boolean, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise reject(Reason.BAD_TYPE, f"{name} must be a number, got {_kind(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise reject(Reason.OUT_OF_RANGE, f"{name} is too large") from None
    if not math.isfinite(out):
        raise reject(Reason.BAD_TYPE, f"{name} must be a finite number")
    return out


def parse_number_text(value: str, name: str) -> float:
    """A finite number written as text (OsmAnd query parameters)."""
    text = value.strip()
    if len(text) > 64:
        raise reject(Reason.BAD_TYPE, f"{name} is not a number")
    try:
        out = float(text)
    except ValueError:
        raise reject(Reason.BAD_TYPE, f"{name} must be a number, got {text[:32]!r}") from None
    if not math.isfinite(out):
        raise reject(Reason.BAD_TYPE, f"{name} must be a finite number")
    return out


def opt_number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    return None if value is None else as_number(value, key)


def req(obj: Mapping[str, Any], key: str) -> Any:
    value = obj.get(key)
    if value is None or value == "":
        raise reject(Reason.MISSING_FIELD, f"field {key!r} is required")
    return value


def as_id(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise reject(Reason.BAD_TYPE, f"{name} must be a string, got {_kind(value)}")
    if not value or len(value) > MAX_ID_LEN:
        raise reject(Reason.OUT_OF_RANGE, f"{name} must be 1..{MAX_ID_LEN} characters")
    return value


def opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise reject(Reason.BAD_TYPE, f"{key} must be a string, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


# --------------------------------------------------------------------------- timestamps


def epoch_from_number(value: float, name: str) -> float:
    """Seconds, or milliseconds when >= 10^11."""
    return value / 1000.0 if abs(value) >= MS_THRESHOLD else value


def parse_iso(text: str, name: str) -> float:
    """ISO-8601 (``T`` or space separator, ``Z`` or offset; naive means UTC)."""
    t = text.strip()
    if not 8 <= len(t) <= 40:
        raise reject(Reason.BAD_TIMESTAMP, f"{name} {text[:40]!r} is not an ISO-8601 time")
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise reject(
            Reason.BAD_TIMESTAMP,
            f"{name} {text[:40]!r} is neither epoch seconds/milliseconds nor ISO-8601",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):
        raise reject(Reason.OUT_OF_RANGE, f"{name} {text[:40]!r} is out of range") from None


def parse_ts(value: Any, name: str, *, now: float) -> float:
    """A JSON timestamp: number (s or ms) or ISO-8601 string; checked against ``now``."""
    if isinstance(value, str):
        ts = parse_iso(value, name)
    else:
        ts = epoch_from_number(as_number(value, name), name)
    return check_ts(ts, name, now=now)


def check_ts(ts: float, name: str, *, now: float) -> float:
    if ts < MIN_TS:
        raise reject(
            Reason.OUT_OF_RANGE,
            f"{name} is before 2000-01-01; send epoch seconds, milliseconds or ISO-8601",
        )
    if ts > now + MAX_FUTURE_S:
        raise reject(
            Reason.FUTURE_TS,
            f"{name} is {ts - now:.0f} s in the future (limit {MAX_FUTURE_S:.0f} s); "
            "check the sender's clock and units",
        )
    return ts


# --------------------------------------------------------------------------- coordinates


def check_lat_lon(lat: float, lon: float) -> tuple[float, float]:
    if not -90.0 <= lat <= 90.0:
        raise reject(Reason.OUT_OF_RANGE, f"lat {lat} is outside -90..90")
    if not -180.0 <= lon <= 180.0:
        raise reject(Reason.OUT_OF_RANGE, f"lon {lon} is outside -180..180")
    return lat, lon


def parse_crs(value: Any) -> str:
    if value is None:
        return "wgs84"
    if not isinstance(value, str):
        raise reject(Reason.BAD_TYPE, f"crs must be a string, got {_kind(value)}")
    crs = CRS_ALIASES.get(value.strip().lower())
    if crs is None:
        raise reject(Reason.BAD_VALUE, f"crs {value[:20]!r} is unknown; use wgs84, gcj02 or bd09")
    return crs


def to_wgs(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """Convert (lon, lat) in ``crs`` to WGS-84 (``geofence.coords.to_wgs84``)."""
    if crs == "wgs84":
        return lon, lat
    from geofence.coords import to_wgs84

    x, y = to_wgs84(lon, lat, crs)
    x, y = float(x), float(y)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise reject(Reason.OUT_OF_RANGE, f"{crs} coordinates cannot be converted to WGS-84")
    lat2, lon2 = check_lat_lon(y, x)
    return lon2, lat2


def position(
    obj: Mapping[str, Any], crs: str, *, required: bool = True
) -> tuple[float, float] | None:
    """(lon, lat) in WGS-84 from ``lat``/``lon`` fields; None when optional and both absent."""
    lat_v, lon_v = obj.get("lat"), obj.get("lon")
    if lat_v is None and lon_v is None and not required:
        return None
    lat = as_number(req(obj, "lat"), "lat")
    lon = as_number(req(obj, "lon"), "lon")
    check_lat_lon(lat, lon)
    return to_wgs(lon, lat, crs)


def accuracy(value: Any, name: str = "acc") -> float | None:
    if value is None:
        return None
    acc = as_number(value, name)
    if not 0.0 <= acc <= MAX_ACC_M:
        raise reject(Reason.OUT_OF_RANGE, f"{name} {acc} m is outside 0..{MAX_ACC_M:.0f}")
    return acc


def soft(value: float | None, lo: float, hi: float) -> float | None:
    """Optional auxiliary value (speed, battery): outside [lo, hi] means unknown (None)."""
    if value is None or not lo <= value <= hi:
        return None
    return value
