"""OwnTracks JSON (MQTT and HTTP mode) to records.

Follows the OwnTracks booklet's JSON payloads: ``_type: location`` (``lat``, ``lon``, ``tst``
epoch seconds, ``acc`` m, ``vel`` km/h, ``batt`` %, ``tid`` ...) becomes a :class:`Fix`;
``transition`` (``event`` enter/leave, ``desc``, ``rid``, ``wtst``) and ``lwt`` become an
:class:`OwnTracksEvent`; every other ``_type`` (card, waypoint(s), cmd, status, steps,
encrypted, ...) is rejected with ``ignored_type``.

OwnTracks messages have no ``msg_id``; the derived one is deterministic so a redelivered
message gets the same id: ``ot:{user}:{device}:{tst}`` for locations,
``ot:{user}:{device}:transition:{tst}:{event}:{rid or desc}`` and ``ot:{user}:{device}:lwt:{tst}``.
"""

from __future__ import annotations

from typing import Any

from wire.fields import (
    accuracy,
    as_number,
    canonical,
    check_lat_lon,
    epoch_from_number,
    opt_number,
    opt_str,
    parse_ts,
    reject,
    req,
    soft,
)
from wire.records import Fix, OwnTracksEvent, Reason, Record

EVENT_TYPES = ("transition", "lwt")


def decode_owntracks_obj(
    obj: dict[str, Any], user: str, device: str, *, source: str, now: float
) -> Record:
    """Decode one OwnTracks JSON object published by ``user``'s ``device``."""
    kind = obj.get("_type")
    if not isinstance(kind, str):
        raise reject(Reason.MISSING_FIELD, "OwnTracks message without a string '_type'")
    sig = opt_str(obj, "sig")
    if kind == "location":
        return _location(obj, user, device, source=source, sig=sig, now=now)
    if kind in EVENT_TYPES:
        return _event(obj, kind, user, device, sig=sig, now=now)
    raise reject(
        Reason.IGNORED_TYPE, f"OwnTracks _type {kind[:32]!r} is not used by SiteWatch (ignored)"
    )


def _location(
    obj: dict[str, Any], user: str, device: str, *, source: str, sig: str | None, now: float
) -> Fix:
    tst_raw = req(obj, "tst")
    ts = parse_ts(tst_raw, "tst", now=now)
    lat = as_number(req(obj, "lat"), "lat")
    lon = as_number(req(obj, "lon"), "lon")
    check_lat_lon(lat, lon)
    vel = soft(opt_number(obj, "vel"), 0.0, 2000.0)
    batt = soft(opt_number(obj, "batt"), 0.0, 100.0)
    return Fix(
        msg_id=f"ot:{user}:{device}:{_tst_key(tst_raw, ts)}",
        engineer_id=user,
        ts=ts,
        lon=lon,
        lat=lat,
        acc_m=accuracy(obj.get("acc")),
        kind="position",
        source=source,
        speed_kmh=vel,
        battery=batt,
        crs="wgs84",
        canonical=canonical(obj),
        sig=sig,
    )


def _event(
    obj: dict[str, Any], kind: str, user: str, device: str, *, sig: str | None, now: float
) -> OwnTracksEvent:
    tst_raw = req(obj, "tst")
    ts = parse_ts(tst_raw, "tst", now=now)
    key = _tst_key(tst_raw, ts)
    if kind == "transition":
        event = opt_str(obj, "event") or ""
        if event not in ("enter", "leave"):
            raise reject(Reason.BAD_VALUE, "transition 'event' must be 'enter' or 'leave'")
        if obj.get("lat") is not None or obj.get("lon") is not None:
            check_lat_lon(as_number(req(obj, "lat"), "lat"), as_number(req(obj, "lon"), "lon"))
        region = opt_str(obj, "rid") or opt_str(obj, "desc") or ""
        msg_id = f"ot:{user}:{device}:transition:{key}:{event}:{region}"
    else:
        msg_id = f"ot:{user}:{device}:lwt:{key}"
    return OwnTracksEvent(
        msg_id=msg_id,
        engineer_id=user,
        ts=ts,
        type=kind,
        payload=obj,
        canonical=canonical(obj),
        sig=sig,
    )


def _tst_key(raw: Any, ts: float) -> str:
    """The timestamp as it appears in derived ids: the integer seconds OwnTracks sends."""
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):  # as sent, not rounded to the microsecond (ids stay as before)
        ts = epoch_from_number(raw, "tst")
    return repr(ts) if ts != int(ts) else str(int(ts))
