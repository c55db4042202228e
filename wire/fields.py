"""Field validation shared by the codecs: JSON parsing, numbers, timestamps, coordinates.

Every helper raises :class:`~wire.records.Rejected` with a reason from
:class:`~wire.records.Reason` and a message naming the field; nothing else escapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from gm.algorithms import canonical_bytes
from wire.records import Reason, Rejected

MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 16
MAX_FUTURE_S = 300.0
MIN_TS = 946_684_800.0  # 2000-01-01T00:00:00Z: anything earlier is a unit mistake
MS_THRESHOLD = 1e11  # numbers >= 10^11 are milliseconds (CONTRACT section 3)
MAX_ID_LEN = 128  # msg_id and other opaque tokens
MAX_NAME_LEN = 64  # registered ids (engineer, device, project) and OwnTracks device names
# Registered ids: ASCII letters, digits and `_ . : @ -`, starting with a letter, digit or `_`
# (so never `.` or `..`), 1..64 characters. The registry enforces the same pattern.
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,63}$"
_ID = re.compile(ID_PATTERN)
# Characters no text may hold: C0 controls, DEL, C1 controls, lone surrogates and the
# non-characters U+FFFE/U+FFFF. PostgreSQL cannot store NUL at all; the others forge log lines,
# break terminals and CSV exports. Free text (``multiline``) keeps TAB, LF and CR.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
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


_CHAR_NAMES = {"\x00": " (NUL)", "\x1b": " (ESC)", "\x7f": " (DEL)"}


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
    nested = any(isinstance(value, dict | list) for value in obj.values())
    if nested:
        check_depth(obj)
    # orjson refuses raw control characters inside strings: one can only arrive as a JSON
    # escape, so a payload without a backslash needs no walk (the common case).
    if b"\\" in payload:
        check_strings(obj)
    return obj


def check_strings(obj: Any, where: str = "") -> None:
    """Every key and string value of a decoded JSON value is free of forbidden characters
    (TAB, LF and CR allowed: free text may be multi-line)."""
    stack: list[tuple[Any, str]] = [(obj, where)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            check_text(value, path or "a string", multiline=True)
        elif isinstance(value, dict):
            for k, v in value.items():
                check_text(k, f"a key of {path or 'the object'}")
                stack.append((v, f"{path}.{k[:40]}" if path else k[:40]))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(value))


def check_text(value: str, name: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or a ``bad_text`` rejection naming the first forbidden character."""
    bad = (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN).search(value)
    if bad is not None:
        raise reject(
            Reason.BAD_TEXT,
            f"{name} holds the control or invalid character U+{ord(bad.group()):04X}"
            f"{_CHAR_NAMES.get(bad.group(), '')} at position {bad.start()}",
        )
    return value


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
    if not text.isascii():  # float() also reads Arabic-Indic and full-width digits
        raise reject(Reason.BAD_TYPE, f"{name} must be written with ASCII digits")
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


def as_token(value: Any, name: str, max_len: int = MAX_ID_LEN) -> str:
    """An opaque token chosen by the sender (msg_id, an OwnTracks device name): 1..max_len
    characters, none of them forbidden."""
    if not isinstance(value, str):
        raise reject(Reason.BAD_TYPE, f"{name} must be a string, got {_kind(value)}")
    if not value or len(value) > max_len:
        raise reject(Reason.OUT_OF_RANGE, f"{name} must be 1..{max_len} characters")
    return check_text(value, name)


def as_id(value: Any, name: str) -> str:
    """A registered id (engineer, device, project): :data:`ID_PATTERN`."""
    text = as_token(value, name, MAX_NAME_LEN)
    if _ID.match(text) is None:
        raise reject(
            Reason.BAD_VALUE,
            f"{name} {text[:40]!r} is not an id: use ASCII letters, digits and _ . : @ -, "
            "starting with a letter, digit or _",
        )
    return text


def opt_str(obj: Mapping[str, Any], key: str, *, multiline: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise reject(Reason.BAD_TYPE, f"{key} must be a string, got {_kind(value)}")
    return check_text(value, key, multiline=multiline)


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
    # PostgreSQL keeps microseconds: a time read back from `fixes` is then the very value the
    # rules were given (rules.engineer_state rebuilds track windows from it)
    return round(ts, 6)


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
