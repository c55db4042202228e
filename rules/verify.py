"""Identity, signature and MAC checks of decoded records against a directory.

Rules (CONTRACT.md section 3):

* The engineer (fixes, OwnTracks events, logs) or device (telemetry) must be registered,
  else ``unknown_identity``; a retired one, or a log of a retired project, or telemetry of a
  device of a retired project, is ``retired`` (CONTRACT §6.3).
* An engineer with an ``sm2_public_key``: a message without ``sig`` is ``unsigned``, one whose
  SM2-with-SM3 signature (default user id, DER or ``r||s`` hex) over the canonical bytes does
  not verify is ``bad_signature``. This holds for every source, OwnTracks and OsmAnd included
  (a ``sig`` field / query parameter is honoured there too), unless the caller passes
  ``allow_unsigned_apps=True``, which lets *unsigned* OwnTracks/OsmAnd messages through
  (a present but wrong ``sig`` is still ``bad_signature``). Engineers without a key need no
  signature; a ``sig`` they send anyway is not checked.
* A device with an HMAC key: a present ``mac`` that is not the SM3-HMAC of the canonical bytes
  is ``bad_mac``. A missing ``mac`` is accepted by default (service-identity simulators send
  unsigned telemetry) and is ``unsigned`` with ``require_mac=True``. A device without a key
  (empty) is never checked.

Nothing here raises anything but :class:`~wire.records.Rejected` (from :func:`check`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gm.algorithms import canonical_bytes, verify_mac, verify_sm2
from wire.records import Fix, OwnTracksEvent, Reason, Record, Rejected, SupervisionLog, Telemetry

__all__ = [
    "APP_SOURCES",
    "DeviceIdentity",
    "Directory",
    "EngineerIdentity",
    "check",
    "check_many",
    "sm2_work",
]

Sm2Verifier = Callable[[str, bytes, str], bool]

APP_SOURCES = frozenset({"owntracks", "owntracks-http", "osmand"})


@dataclass(frozen=True, slots=True)
class EngineerIdentity:
    id: str
    sm2_public_key: str | None = None  # hex x||y, optional 04 prefix
    retired: bool = False


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    id: str
    hmac_key: bytes = b""
    retired: bool = False


class Directory(Protocol):
    def engineer(self, engineer_id: str) -> EngineerIdentity | None: ...

    def device(self, device_id: str) -> DeviceIdentity | None: ...

    def project_retired(self, project_id: str) -> bool: ...


def check(
    record: Record,
    directory: Directory,
    *,
    raw: Mapping[str, Any] | None = None,
    require_mac: bool = False,
    allow_unsigned_apps: bool = False,
    verify_sm2: Sm2Verifier = verify_sm2,
) -> None:
    """Raise ``Rejected`` unless ``record`` comes from a registered identity with a valid
    signature / MAC where one is required. ``raw`` (the original JSON object), when given,
    supplies the signed bytes and ``sig``/``mac`` instead of the record's own copies.
    ``verify_sm2`` may be replaced by a function answering from signatures verified
    beforehand (in parallel, see :func:`sm2_work`)."""
    if isinstance(record, Telemetry):
        _check_device(record, directory, raw, require_mac)
    else:
        _check_engineer(record, directory, raw, allow_unsigned_apps, verify_sm2)


def check_many(
    items: Iterable[Record],
    directory: Directory,
    *,
    require_mac: bool = False,
    allow_unsigned_apps: bool = False,
    verify_sm2: Sm2Verifier = verify_sm2,
) -> list[Rejected | None]:
    """:func:`check` over a batch: per item ``None`` (passes) or the ``Rejected``.

    Directory look-ups are made once per id in the batch.
    """
    engineers: dict[str, EngineerIdentity | None] = {}
    devices: dict[str, DeviceIdentity | None] = {}

    class _Memo:
        def engineer(self, engineer_id: str) -> EngineerIdentity | None:
            if engineer_id not in engineers:
                engineers[engineer_id] = directory.engineer(engineer_id)
            return engineers[engineer_id]

        def device(self, device_id: str) -> DeviceIdentity | None:
            if device_id not in devices:
                devices[device_id] = directory.device(device_id)
            return devices[device_id]

        def project_retired(self, project_id: str) -> bool:
            return directory.project_retired(project_id)

    memo = _Memo()
    out: list[Rejected | None] = []
    for record in items:
        try:
            check(
                record,
                memo,
                require_mac=require_mac,
                allow_unsigned_apps=allow_unsigned_apps,
                verify_sm2=verify_sm2,
            )
        except Rejected as why:
            out.append(why)
        else:
            out.append(None)
    return out


def _signed(
    record: Fix | SupervisionLog | OwnTracksEvent | Telemetry,
    raw: Mapping[str, Any] | None,
    field: str,
) -> tuple[bytes, str | None]:
    if raw is None:
        return signed_bytes(record), getattr(record, field)
    value = raw.get(field)
    try:
        data = canonical_bytes(raw)
    except (ValueError, TypeError):
        data = b""
    return data, value if isinstance(value, str) else None


def _check_engineer(
    record: Fix | SupervisionLog | OwnTracksEvent,
    directory: Directory,
    raw: Mapping[str, Any] | None,
    allow_unsigned_apps: bool,
    verify_sm2: Sm2Verifier = verify_sm2,
) -> None:
    who = directory.engineer(record.engineer_id)
    if who is None:
        raise Rejected(
            Reason.UNKNOWN_IDENTITY,
            f"engineer {record.engineer_id[:40]!r} is not registered; register it with "
            "POST /api/engineers first",
        )
    if who.retired:
        raise Rejected(
            Reason.RETIRED, f"engineer {record.engineer_id[:40]!r} is retired: nothing new is taken"
        )
    if isinstance(record, SupervisionLog) and directory.project_retired(record.project_id):
        raise Rejected(
            Reason.RETIRED, f"project {record.project_id[:40]!r} is retired: nothing new is taken"
        )
    if not who.sm2_public_key:
        return
    data, sig = _signed(record, raw, "sig")
    if not sig:
        source = record.source if isinstance(record, Fix) else "owntracks"
        if allow_unsigned_apps and source in APP_SOURCES:
            return
        raise Rejected(
            Reason.UNSIGNED,
            f"engineer {record.engineer_id[:40]!r} has an SM2 key: sign the message "
            "(field 'sig', SM2 with SM3 over the canonical JSON)",
        )
    if not verify_sm2(who.sm2_public_key, data, sig):
        raise Rejected(
            Reason.BAD_SIGNATURE,
            f"the SM2 signature of {record.msg_id[:60]!r} does not verify with engineer "
            f"{record.engineer_id[:40]!r}'s public key; sign the canonical JSON (keys sorted, "
            "no spaces, UTF-8, without sig/mac) with user id 1234567812345678",
        )


def _check_device(
    record: Telemetry, directory: Directory, raw: Mapping[str, Any] | None, require_mac: bool
) -> None:
    dev = directory.device(record.device_id)
    if dev is None:
        raise Rejected(
            Reason.UNKNOWN_IDENTITY,
            f"device {record.device_id[:40]!r} is not registered; register it with "
            "POST /api/devices first",
        )
    if dev.retired:
        raise Rejected(
            Reason.RETIRED,
            f"device {record.device_id[:40]!r} or its project is retired: nothing new is taken",
        )
    if not dev.hmac_key:
        return
    data, mac = _signed(record, raw, "mac")
    if not mac:
        if require_mac:
            raise Rejected(
                Reason.UNSIGNED,
                f"device {record.device_id[:40]!r} must MAC its telemetry (field 'mac', "
                "SM3-HMAC with the device key over the canonical JSON)",
            )
        return
    if not verify_mac(dev.hmac_key, data, mac):
        raise Rejected(
            Reason.BAD_MAC,
            f"the SM3-HMAC of {record.msg_id[:60]!r} does not match device "
            f"{record.device_id[:40]!r}'s key; MAC the canonical JSON (keys sorted, no spaces, "
            "UTF-8, without sig/mac)",
        )


def sm2_work(records: Sequence[Record], directory: Directory) -> list[tuple[str, bytes, str]]:
    """The (public key, signed bytes, signature) triples :func:`check_many` would verify for
    ``records`` (engineers with a key whose message carries a ``sig``), so that a caller can
    verify them all at once, in parallel, and pass the answers as ``verify_sm2``."""
    out: list[tuple[str, bytes, str]] = []
    keys: dict[str, str | None] = {}
    for record in records:
        if isinstance(record, Telemetry):
            continue
        eid = record.engineer_id
        if eid not in keys:
            who = directory.engineer(eid)
            keys[eid] = who.sm2_public_key if who is not None else None
        pub = keys[eid]
        if pub and record.sig:
            out.append((pub, signed_bytes(record), record.sig))
    return out


def signed_bytes(record: Record) -> bytes:
    """What the sender signed: the canonical bytes, less the `attachments` the receiver added
    to a practice record (the SM3 of the files it uploaded without naming them, CONTRACT
    §6.4); the evidence chain holds them with the rest."""
    if isinstance(record, SupervisionLog) and record.files and b'"attachments"' in record.canonical:
        obj = json.loads(record.canonical)
        obj.pop("attachments", None)
        return canonical_bytes(obj)
    return record.canonical
