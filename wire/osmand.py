"""Traccar OsmAnd protocol (``GET/POST /osmand``) to a :class:`~wire.records.Fix`.

Follows Traccar's ``OsmAndProtocolDecoder`` (traccar/traccar,
``src/main/java/org/traccar/protocol/OsmAndProtocolDecoder.java``):

* ``Content-Type: application/json`` - the Traccar Client 9 body ``{"device_id": ...,
  "location": {"timestamp": ISO, "coords": {"latitude", "longitude", "accuracy", "speed"
  (m/s), "heading", "altitude"}, "battery": {"level" 0..1, "is_charging"}, "is_moving",
  "event", ...}}``; negative speed/heading/accuracy/level mean "unknown".
* otherwise query-string parameters, or (when the query is empty) the form-encoded body:
  ``id``/``deviceid``, ``lat``+``lon`` or ``location=lat,lon``, ``timestamp``, ``speed``
  (knots), ``bearing``/``heading``, ``altitude``, ``accuracy``, ``hdop``, ``batt`` (%).
  Empty values are skipped, as Traccar does.

``timestamp``: 12 digits are ``ddMMyyHHmmss`` UTC (Traccar's device date format); other
integers are epoch seconds, or milliseconds when >= 10^11 (CONTRACT.md; Traccar's own
cut-off is 2^31 - the two agree for every date between 1973 and 2038); text containing
``T`` is ISO-8601; ``yyyy-MM-dd HH:mm:ss`` is read as UTC (Traccar uses the server zone).
A request without a timestamp gets the receiver's ``now``, as in Traccar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from wire.fields import (
    MAX_PAYLOAD,
    accuracy,
    as_id,
    as_number,
    canonical,
    check_lat_lon,
    check_ts,
    epoch_from_number,
    parse_crs,
    parse_iso,
    parse_json_object,
    parse_ts,
    reject,
    soft,
    to_wgs,
)
from wire.records import Fix, Reason

__all__ = ["KNOT_KMH", "MPS_KMH", "decode_osmand"]

KNOT_KMH = 1.852
MPS_KMH = 3.6
# re.ASCII: `\d` alone also matches Arabic-Indic, full-width and other Unicode digits.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d{1,20}", re.ASCII)
_NUMERIC_KEYS = ("speed", "bearing", "heading", "altitude", "accuracy", "hdop", "batt")


def decode_osmand(
    params: Mapping[str, str], body: bytes | None, content_type: str | None, *, now: float
) -> Fix:
    """Decode one OsmAnd request (query ``params``, raw ``body``, its ``content_type``)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    # A JSON content type with an empty body is what generic HTTP tools send with a GET:
    # the query is the request then.
    if body and (ctype == "application/json" or (not params and body.lstrip()[:1] == b"{")):
        return _decode_json(parse_json_object(body or b""), now=now)
    values = {k: v for k, v in params.items() if isinstance(v, str) and v != ""}
    if not params and body:
        values = _form(body)
    return _decode_params(values, now=now)


def _form(body: bytes) -> dict[str, str]:
    if len(body) > MAX_PAYLOAD:
        raise reject(Reason.TOO_LARGE, f"body is {len(body)} bytes; the limit is 64 KiB")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=False, errors="strict", max_num_fields=200)
    except UnicodeDecodeError:
        raise reject(Reason.BAD_ENCODING, "form body is not valid UTF-8") from None
    except ValueError as exc:
        raise reject(Reason.BAD_JSON, f"form body cannot be parsed: {exc}") from None
    return {k: v for k, v in pairs if v != ""}


def _num(values: Mapping[str, str], key: str) -> float | None:
    text = values.get(key)
    if text is None:
        return None
    text = text.strip()
    if len(text) > 40 or not _NUMBER.fullmatch(text):
        raise reject(Reason.BAD_TYPE, f"{key} must be a number, got {text[:32]!r}")
    return as_number(float(text), key)


def _timestamp(text: str, *, now: float) -> float:
    t = text.strip()
    if len(t) == 12 and t.isascii() and t.isdigit():
        try:
            dt = datetime.strptime(t, "%d%m%y%H%M%S").replace(tzinfo=UTC)
            return check_ts(dt.timestamp(), "timestamp", now=now)
        except ValueError:
            pass
    if _INTEGER.fullmatch(t) or _NUMBER.fullmatch(t):
        return check_ts(epoch_from_number(float(t), "timestamp"), "timestamp", now=now)
    return check_ts(parse_iso(t, "timestamp"), "timestamp", now=now)


def _decode_params(values: Mapping[str, str], *, now: float) -> Fix:
    device = values.get("id") or values.get("deviceid")
    if device is None:
        raise reject(Reason.MISSING_FIELD, "OsmAnd request without 'id' (the engineer id)")
    engineer_id = as_id(device, "id")
    if "location" in values:
        parts = values["location"].split(",")
        if len(parts) < 2:
            raise reject(Reason.BAD_TYPE, "location must be 'lat,lon'")
        lat_lon = {"lat": parts[0], "lon": parts[1]}
        lat, lon = _num(lat_lon, "lat"), _num(lat_lon, "lon")
    else:
        lat, lon = _num(values, "lat"), _num(values, "lon")
    if lat is None or lon is None:
        raise reject(Reason.MISSING_FIELD, "OsmAnd request without lat/lon (or location=lat,lon)")
    check_lat_lon(lat, lon)
    nums = {k: _num(values, k) for k in _NUMERIC_KEYS}
    ts_text = values.get("timestamp")
    ts = round(now, 6) if ts_text is None else _timestamp(ts_text, now=now)
    crs = parse_crs(values.get("crs"))
    lon_w, lat_w = to_wgs(lon, lat, crs)
    speed = nums["speed"]
    return Fix(
        msg_id=f"osmand:{engineer_id}:{round(ts * 1000)}",
        engineer_id=engineer_id,
        ts=ts,
        lon=lon_w,
        lat=lat_w,
        acc_m=accuracy(nums["accuracy"], "accuracy"),
        kind="position",
        source="osmand",
        speed_kmh=soft(None if speed is None else speed * KNOT_KMH, 0.0, 5000.0),
        battery=soft(nums["batt"], 0.0, 100.0),
        crs=crs,
        canonical=canonical(dict(values)),
        sig=values.get("sig"),
    )


def _obj(parent: Mapping[str, Any], key: str, *, required: bool) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        if required:
            raise reject(Reason.MISSING_FIELD, f"field {key!r} is required")
        return None
    if not isinstance(value, dict):
        raise reject(Reason.BAD_TYPE, f"{key} must be an object")
    return value


def _opt(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    return None if value is None else as_number(value, key)


def _decode_json(root: dict[str, Any], *, now: float) -> Fix:
    device = root.get("device_id")
    if device is None:
        raise reject(Reason.MISSING_FIELD, "Traccar Client JSON without 'device_id'")
    engineer_id = as_id(device, "device_id")
    location = _obj(root, "location", required=True)
    assert location is not None
    ts_raw = location.get("timestamp")
    ts = round(now, 6) if ts_raw is None else parse_ts(ts_raw, "location.timestamp", now=now)
    coords = _obj(location, "coords", required=True)
    assert coords is not None
    lat = coords.get("latitude")
    lon = coords.get("longitude")
    if lat is None or lon is None:
        raise reject(Reason.MISSING_FIELD, "location.coords needs latitude and longitude")
    lat_f, lon_f = as_number(lat, "latitude"), as_number(lon, "longitude")
    check_lat_lon(lat_f, lon_f)
    speed = _opt(coords, "speed")
    _opt(coords, "heading")
    _opt(coords, "altitude")
    acc = _opt(coords, "accuracy")
    battery = _obj(location, "battery", required=False)
    level = _opt(battery, "level") if battery else None
    return Fix(
        msg_id=f"osmand:{engineer_id}:{round(ts * 1000)}",
        engineer_id=engineer_id,
        ts=ts,
        lon=lon_f,
        lat=lat_f,
        acc_m=None if acc is None or acc < 0 else accuracy(acc, "accuracy"),
        kind="position",
        source="osmand",
        speed_kmh=soft(None if speed is None else speed * MPS_KMH, 0.0, 5000.0),
        battery=soft(None if level is None else round(level * 100.0, 3), 0.0, 100.0),
        crs="wgs84",
        canonical=canonical(root),
        sig=root.get("sig") if isinstance(root.get("sig"), str) else None,
    )
