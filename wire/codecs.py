"""Wire formats to records: MQTT topics, OwnTracks HTTP mode, Traccar OsmAnd.

Every ``decode_*`` returns one record or raises :class:`~wire.records.Rejected`; no other
exception escapes, whatever the bytes (tested with hypothesis).

MQTT topics (CONTRACT.md section 3):

* ``owntracks/{engineer_id}/{device}`` - OwnTracks JSON (``wire.owntracks``); the
  ``.../event`` sub-topic carries transitions; other sub-topics are ``ignored_type``.
* ``sitewatch/checkin/{engineer_id}`` - ``{msg_id, engineer_id, ts, lat, lon, acc?, crs?,
  kind?, sig?}``; ``kind`` defaults to ``position``.
* ``sitewatch/devices/{device_id}/telemetry`` - ``{msg_id, ts, metrics: {name: number},
  lat?, lon?, crs?, mac?}``.
* ``sitewatch/logs/{engineer_id}`` - ``{msg_id, project_id, ts, lat, lon, text, kind?, crs?,
  sig?}``: a practice record without files; one with files (``files: [{sm3, type, bytes}]``)
  comes over HTTP with them (``POST /records``, :func:`decode_record`).
"""

from __future__ import annotations

import re
from typing import Any

from wire.fields import (
    MAX_ID_LEN,
    MAX_NAME_LEN,
    accuracy,
    as_id,
    as_number,
    as_token,
    canonical,
    check_text,
    opt_str,
    parse_crs,
    parse_json_object,
    parse_ts,
    position,
    reject,
    req,
)
from wire.osmand import decode_osmand
from wire.owntracks import decode_owntracks_obj
from wire.records import Attachment, Fix, Reason, Record, SupervisionLog, Telemetry

__all__ = ["decode_mqtt", "decode_osmand", "decode_owntracks_http", "decode_record"]

FIX_KINDS = ("position", "checkin", "checkout")
RECORD_KINDS = ("log", "side_station", "inspection", "notice", "stop_work")
NOTICE_KINDS = ("notice", "stop_work")  # they open a notice with a lifecycle (rules.notices)
MEDIA_TYPES = ("image/jpeg", "image/png", "application/pdf")
MAX_FILES = 9
MAX_FILE_BYTES = 20 * 1024 * 1024  # a PDF; a photo at most 10 MiB (attachments.checks)
SM3_HEX = re.compile(r"[0-9a-f]{64}")
MAX_METRICS = 256
MAX_TEXT = 20_000
OWNTRACKS_IGNORED_SUBTOPICS = (
    "info",
    "cmd",
    "waypoint",
    "waypoints",
    "dump",
    "status",
    "steps",
    "beacon",
)


def decode_mqtt(topic: str, payload: bytes, *, now: float) -> Record:
    """Decode one MQTT message received on ``topic``; raises ``Rejected``."""
    parts = topic.split("/") if isinstance(topic, str) else []
    if any(not p or len(p) > MAX_ID_LEN for p in parts):
        raise reject(Reason.UNKNOWN_TOPIC, f"topic {str(topic)[:80]!r} is not an ingest topic")
    check_text(topic, "the topic")
    head = parts[0] if parts else ""
    if head == "owntracks" and len(parts) in (3, 4):
        if len(parts) == 4 and parts[3] != "event":
            if parts[3] in OWNTRACKS_IGNORED_SUBTOPICS:
                raise reject(Reason.IGNORED_TYPE, f"OwnTracks {parts[3]} messages are not used")
            raise reject(Reason.UNKNOWN_TOPIC, f"topic {topic[:80]!r} is not an ingest topic")
        user, device = as_id(parts[1], "user"), as_token(parts[2], "device", MAX_NAME_LEN)
        obj = parse_json_object(payload)
        return decode_owntracks_obj(obj, user, device, source="owntracks", now=now)
    if head == "sitewatch" and len(parts) >= 3:
        if parts[1] == "checkin" and len(parts) == 3:
            return _checkin(parse_json_object(payload), as_id(parts[2], "engineer id"), now=now)
        if parts[1] == "logs" and len(parts) == 3:
            obj = parse_json_object(payload)
            if "files" in obj or "attachments" in obj or obj.get("kind") in NOTICE_KINDS:
                raise reject(
                    Reason.BAD_VALUE,
                    "a record with files, a notice or a stop-work order is posted with "
                    "POST /api/records",
                )
            return _log(obj, as_id(parts[2], "engineer id"), now=now)
        if parts[1] == "devices" and len(parts) == 4 and parts[3] == "telemetry":
            return _telemetry(parse_json_object(payload), as_id(parts[2], "device id"), now=now)
    raise reject(
        Reason.UNKNOWN_TOPIC,
        f"topic {str(topic)[:80]!r} is not an ingest topic (owntracks/USER/DEVICE, "
        "sitewatch/checkin/ID, sitewatch/logs/ID, sitewatch/devices/ID/telemetry)",
    )


def decode_owntracks_http(user: str, device: str | None, body: bytes, *, now: float) -> Record:
    """OwnTracks HTTP mode: the body is one JSON object (the app POSTs one message at a time).

    ``user`` comes from ``X-Limit-U`` or ``?u=``, ``device`` from ``X-Limit-D`` / ``?d=``;
    without a device the body's ``tid`` (else ``http``) names it in the derived msg_id.
    """
    user_id = as_id(user, "user")
    obj = parse_json_object(body)
    dev = device if device else (obj.get("tid") if isinstance(obj.get("tid"), str) else None)
    dev_id = as_token(dev, "device", MAX_NAME_LEN) if dev else "http"
    return decode_owntracks_obj(obj, user_id, dev_id, source="owntracks-http", now=now)


def _body_id(obj: dict[str, Any], key: str, topic_id: str, *, required: bool) -> None:
    value = obj.get(key)
    if value is None:
        if required:
            raise reject(Reason.MISSING_FIELD, f"field {key!r} is required")
        return
    if as_id(value, key) != topic_id:
        raise reject(
            Reason.TOPIC_MISMATCH,
            f"{key} {value[:40]!r} in the body differs from {topic_id[:40]!r} in the topic",
        )


def _checkin(obj: dict[str, Any], engineer_id: str, *, now: float) -> Fix:
    msg_id = as_token(req(obj, "msg_id"), "msg_id")
    _body_id(obj, "engineer_id", engineer_id, required=True)
    ts = parse_ts(req(obj, "ts"), "ts", now=now)
    crs = parse_crs(obj.get("crs"))
    pos = position(obj, crs)
    assert pos is not None
    kind = obj.get("kind", "position")
    if kind is None:
        kind = "position"
    if not isinstance(kind, str):
        raise reject(Reason.BAD_TYPE, "kind must be a string")
    if kind not in FIX_KINDS:
        raise reject(Reason.BAD_VALUE, f"kind {kind[:20]!r} is not position, checkin or checkout")
    return Fix(
        msg_id=msg_id,
        engineer_id=engineer_id,
        ts=ts,
        lon=pos[0],
        lat=pos[1],
        acc_m=accuracy(obj.get("acc")),
        kind=kind,
        source="checkin",
        crs=crs,
        canonical=canonical(obj),
        sig=opt_str(obj, "sig"),
    )


def decode_record(obj: dict[str, Any], engineer_id: str, *, now: float) -> SupervisionLog:
    """A practice record as ``POST /records`` carries it (its ``files`` named by SM3), or as
    its evidence entry holds it; raises ``Rejected``."""
    return _log(obj, as_id(engineer_id, "engineer id"), now=now)


def _files(obj: dict[str, Any]) -> tuple[Attachment, ...]:
    """`files` as the sender named (and signed) them, or `attachments` as the receiver added
    them for files uploaded without being named."""
    if "files" in obj and "attachments" in obj:
        raise reject(Reason.BAD_VALUE, "a record has files or attachments, not both")
    value = obj.get("files", obj.get("attachments", []))
    if not isinstance(value, list):
        raise reject(Reason.BAD_TYPE, "files must be an array of {sm3, type, bytes}")
    if len(value) > MAX_FILES:
        raise reject(Reason.OUT_OF_RANGE, f"at most {MAX_FILES} files a record")
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, dict):
            raise reject(Reason.BAD_TYPE, f"files[{k}] must be an object {{sm3, type, bytes}}")
        sm3 = req(item, "sm3")
        if not isinstance(sm3, str) or not SM3_HEX.fullmatch(sm3):
            raise reject(Reason.BAD_VALUE, f"files[{k}].sm3 must be 64 lowercase hex digits")
        media = req(item, "type")
        if media not in MEDIA_TYPES:
            raise reject(
                Reason.BAD_VALUE, f"files[{k}].type must be one of {', '.join(MEDIA_TYPES)}"
            )
        size = req(item, "bytes")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_FILE_BYTES:
            raise reject(Reason.OUT_OF_RANGE, f"files[{k}].bytes must be 1..{MAX_FILE_BYTES}")
        out.append(Attachment(sm3, media, size))
    if len({a.sm3 for a in out}) != len(out):
        raise reject(Reason.BAD_VALUE, "a file is named twice")
    return tuple(out)


def _log(obj: dict[str, Any], engineer_id: str, *, now: float) -> SupervisionLog:
    msg_id = as_token(req(obj, "msg_id"), "msg_id")
    _body_id(obj, "engineer_id", engineer_id, required=False)
    project_id = as_id(req(obj, "project_id"), "project_id")
    ts = parse_ts(req(obj, "ts"), "ts", now=now)
    crs = parse_crs(obj.get("crs"))
    pos = position(obj, crs)
    assert pos is not None
    text = req(obj, "text")
    if not isinstance(text, str):
        raise reject(Reason.BAD_TYPE, "text must be a string")
    if not text.strip():
        raise reject(Reason.MISSING_FIELD, "text is empty")
    if len(text) > MAX_TEXT:
        raise reject(Reason.OUT_OF_RANGE, f"text is longer than {MAX_TEXT} characters")
    check_text(text, "text", multiline=True)
    kind = obj.get("kind", "log")
    if kind not in RECORD_KINDS:
        raise reject(Reason.BAD_VALUE, f"kind must be one of {', '.join(RECORD_KINDS)}")
    files = _files(obj)
    return SupervisionLog(
        msg_id=msg_id,
        engineer_id=engineer_id,
        project_id=project_id,
        ts=ts,
        lon=pos[0],
        lat=pos[1],
        text=text,
        canonical=canonical(obj),
        sig=opt_str(obj, "sig"),
        crs=crs,
        kind=kind,
        files=files,
    )


def _telemetry(obj: dict[str, Any], device_id: str, *, now: float) -> Telemetry:
    msg_id = as_token(req(obj, "msg_id"), "msg_id")
    _body_id(obj, "device_id", device_id, required=False)
    ts = parse_ts(req(obj, "ts"), "ts", now=now)
    raw_metrics = obj.get("metrics")
    if raw_metrics is None:
        raise reject(Reason.MISSING_FIELD, "field 'metrics' is required")
    if not isinstance(raw_metrics, dict):
        raise reject(Reason.BAD_TYPE, "metrics must be an object {name: number}")
    if len(raw_metrics) > MAX_METRICS:
        raise reject(Reason.OUT_OF_RANGE, f"more than {MAX_METRICS} metrics")
    metrics: dict[str, float] = {}
    for name, value in raw_metrics.items():
        if not name or len(name) > 64:
            raise reject(Reason.OUT_OF_RANGE, "metric names must be 1..64 characters")
        check_text(name, "a metric name")
        metrics[name] = as_number(value, f"metrics.{name[:64]}")
    crs = parse_crs(obj.get("crs"))
    pos = position(obj, crs, required=False)
    return Telemetry(
        msg_id=msg_id,
        device_id=device_id,
        ts=ts,
        metrics=metrics,
        lon=pos[0] if pos else None,
        lat=pos[1] if pos else None,
        canonical=canonical(obj),
        mac=opt_str(obj, "mac"),
        crs=crs,
    )
