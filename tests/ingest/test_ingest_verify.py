from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pytest
from gmssl import sm2 as pure_sm2

from gm import algorithms as gm
from rules.verify import DeviceIdentity, EngineerIdentity, check, check_many
from wire.codecs import decode_mqtt, decode_osmand
from wire.records import Fix, Rejected

NOW = 1_700_000_300.0
TS = 1_700_000_000
PRIV, PUB = gm.generate_sm2_keypair()
DEV_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


@dataclass
class Dir:
    engineers: dict[str, EngineerIdentity] = field(default_factory=dict)
    devices: dict[str, DeviceIdentity] = field(default_factory=dict)
    retired_projects: set[str] = field(default_factory=set)
    calls: int = 0

    def engineer(self, engineer_id: str) -> EngineerIdentity | None:
        self.calls += 1
        return self.engineers.get(engineer_id)

    def device(self, device_id: str) -> DeviceIdentity | None:
        self.calls += 1
        return self.devices.get(device_id)

    def project_retired(self, project_id: str) -> bool:
        return project_id in self.retired_projects


DIRECTORY = Dir(
    engineers={
        "E1": EngineerIdentity("E1", PUB),
        "E2": EngineerIdentity("E2", None),
        "E3": EngineerIdentity("E3", "04" + PUB),
    },
    devices={"D1": DeviceIdentity("D1", DEV_KEY), "D0": DeviceIdentity("D0", b"")},
    retired_projects={"P-OLD"},
)


def signed_checkin(engineer: str = "E1", *, der: bool = True, **extra: object) -> bytes:
    body = {
        "msg_id": f"m-{engineer}",
        "engineer_id": engineer,
        "ts": TS,
        "lat": 22.5,
        "lon": 114.0,
        **extra,
    }
    body["sig"] = gm.sign_sm2(PRIV, gm.canonical_bytes(body), public_key_hex=PUB, der=der)
    return json.dumps(body, ensure_ascii=False, indent=2).encode()  # any spacing / key order


def why(record: object, **kw: object) -> str | None:
    try:
        check(record, DIRECTORY, **kw)  # type: ignore[arg-type]
    except Rejected as exc:
        assert exc.message
        return exc.reason
    return None


@pytest.mark.parametrize("der", [True, False])
def test_signed_checkin_passes(der: bool) -> None:
    rec = decode_mqtt("sitewatch/checkin/E1", signed_checkin(der=der, text="中文"), now=NOW)
    assert why(rec) is None
    rec3 = decode_mqtt("sitewatch/checkin/E3", signed_checkin("E3", der=der), now=NOW)
    assert why(rec3) is None  # key registered with the 04 prefix


def test_signature_by_pure_python_gmssl_passes() -> None:
    body = {
        "msg_id": "p1",
        "engineer_id": "E1",
        "ts": TS,
        "lat": 22.5,
        "lon": 114.0,
        "crs": "gcj02",
    }
    signer = pure_sm2.CryptSM2(private_key=PRIV, public_key=PUB)
    signer.public_key = PUB
    body["sig"] = signer.sign_with_sm3(gm.canonical_bytes(body))
    rec = decode_mqtt("sitewatch/checkin/E1", json.dumps(body).encode(), now=NOW)
    assert why(rec) is None


def test_unsigned_bad_signature_unknown() -> None:
    body = json.loads(signed_checkin())
    tampered = decode_mqtt(
        "sitewatch/checkin/E1", json.dumps({**body, "lat": 22.6}).encode(), now=NOW
    )
    assert why(tampered) == "bad_signature"
    garbage = decode_mqtt(
        "sitewatch/checkin/E1", json.dumps({**body, "sig": "zz"}).encode(), now=NOW
    )
    assert why(garbage) == "bad_signature"
    del body["sig"]
    unsigned = decode_mqtt("sitewatch/checkin/E1", json.dumps(body).encode(), now=NOW)
    assert why(unsigned) == "unsigned"
    unknown = decode_mqtt(
        "sitewatch/checkin/E9", json.dumps({**body, "engineer_id": "E9"}).encode(), now=NOW
    )
    assert why(unknown) == "unknown_identity"
    keyless = decode_mqtt(
        "sitewatch/checkin/E2", json.dumps({**body, "engineer_id": "E2"}).encode(), now=NOW
    )
    assert why(keyless) is None


def test_raw_overrides_record_copy() -> None:
    raw = json.loads(signed_checkin())
    rec = decode_mqtt("sitewatch/checkin/E1", json.dumps(raw).encode(), now=NOW)
    assert isinstance(rec, Fix)
    stripped = replace(rec, canonical=b"", sig=None)
    assert why(stripped) == "unsigned"
    assert why(stripped, raw=raw) is None


def test_apps_need_signature_unless_allowed() -> None:
    ot = decode_mqtt(
        "owntracks/E1/phone",
        b'{"_type":"location","lat":22.5,"lon":114.0,"tst":1700000000}',
        now=NOW,
    )
    assert isinstance(ot, Fix)
    assert why(ot) == "unsigned"
    assert why(ot, allow_unsigned_apps=True) is None
    osm = decode_osmand({"id": "E1", "lat": "22.5", "lon": "114"}, None, None, now=NOW)
    assert why(osm) == "unsigned"
    assert why(osm, allow_unsigned_apps=True) is None
    assert why(replace(osm, sig="00" * 64), allow_unsigned_apps=True) == "bad_signature"
    params = {"id": "E1", "lat": "22.5", "lon": "114", "timestamp": str(TS)}
    params["sig"] = gm.sign_sm2(PRIV, gm.canonical_bytes(params), public_key_hex=PUB)
    assert why(decode_osmand(params, None, None, now=NOW)) is None
    lwt = decode_mqtt("owntracks/E1/phone", b'{"_type":"lwt","tst":1700000000}', now=NOW)
    assert why(lwt) == "unsigned"
    assert why(lwt, allow_unsigned_apps=True) is None
    assert why(replace(ot, engineer_id="E2")) is None


def telemetry(mac: str | None, **extra: object) -> bytes:
    body: dict[str, object] = {"msg_id": "t1", "ts": TS, "metrics": {"pm25": 35.5}, **extra}
    if mac == "good":
        body["mac"] = gm.sm3_hmac_hex(DEV_KEY, gm.canonical_bytes(body))
    elif mac is not None:
        body["mac"] = mac
    return json.dumps(body).encode()


def test_device_mac_rules() -> None:
    good = decode_mqtt("sitewatch/devices/D1/telemetry", telemetry("good"), now=NOW)
    assert why(good) is None and why(good, require_mac=True) is None
    bad = decode_mqtt("sitewatch/devices/D1/telemetry", telemetry("ab" * 32), now=NOW)
    assert why(bad) == "bad_mac"
    short = decode_mqtt("sitewatch/devices/D1/telemetry", telemetry("ab"), now=NOW)
    assert why(short) == "bad_mac"
    missing = decode_mqtt("sitewatch/devices/D1/telemetry", telemetry(None), now=NOW)
    assert why(missing) is None
    assert why(missing, require_mac=True) == "unsigned"
    keyless = decode_mqtt("sitewatch/devices/D0/telemetry", telemetry("ab"), now=NOW)
    assert why(keyless, require_mac=True) is None
    unknown = decode_mqtt("sitewatch/devices/D9/telemetry", telemetry("good"), now=NOW)
    assert why(unknown) == "unknown_identity"


def test_check_many_batches_lookups() -> None:
    d = Dir(engineers=DIRECTORY.engineers, devices=DIRECTORY.devices)
    ok = decode_mqtt("sitewatch/checkin/E1", signed_checkin(), now=NOW)
    assert isinstance(ok, Fix)
    bad = replace(ok, sig="00")
    tel = decode_mqtt("sitewatch/devices/D1/telemetry", telemetry("good"), now=NOW)
    out = check_many([ok, bad, tel, ok, tel], d)
    assert [o.reason if o else None for o in out] == [None, "bad_signature", None, None, None]
    assert d.calls == 2
    assert isinstance(ok, Fix)


def test_a_log_of_a_retired_project_is_retired() -> None:
    """CONTRACT §6.3: a retired project's messages are rejected with reason `retired`; the
    same engineer's log of a live project passes."""

    def log(project_id: str) -> bytes:
        body = {"msg_id": f"l-{project_id}", "project_id": project_id, "ts": TS}
        body |= {"lat": 22.5, "lon": 114.0, "text": "巡视"}
        return json.dumps(body).encode()

    old = decode_mqtt("sitewatch/logs/E2", log("P-OLD"), now=NOW)
    live = decode_mqtt("sitewatch/logs/E2", log("P-NEW"), now=NOW)
    assert why(old) == "retired"
    assert why(live) is None


def test_a_signed_record_passes_with_the_attachments_the_receiver_added() -> None:
    """CONTRACT §6.4: the engineer signs the record's JSON; the receiver adds `attachments`
    (the SM3 of the uploaded files) for the chain. The signature still verifies; a text
    changed after signing does not."""
    from wire.codecs import decode_record

    body = {"msg_id": "r1", "project_id": "P1", "ts": TS, "lat": 22.5, "lon": 114.0}
    body |= {"kind": "inspection", "text": "巡视：临边防护缺失"}
    body["sig"] = gm.sign_sm2(PRIV, gm.canonical_bytes(body), public_key_hex=PUB)
    added = body | {"attachments": [{"sm3": "ab" * 32, "type": "image/jpeg", "bytes": 9}]}
    record = decode_record(added, "E1", now=NOW)
    assert [a.sm3 for a in record.files] == ["ab" * 32]
    assert b'"attachments"' in record.canonical  # the chain covers the files
    assert why(record) is None
    forged = decode_record(added | {"text": "巡视：无问题"}, "E1", now=NOW)
    assert why(forged) == "bad_signature"


@pytest.mark.parametrize("extra", [{"kind": "notice"}, {"kind": "stop_work"}, {"files": []}])
def test_notices_and_files_come_over_http_not_mqtt(extra: dict[str, object]) -> None:
    body = {"msg_id": "l1", "project_id": "P1", "ts": TS, "lat": 22.5, "lon": 114.0}
    body |= {"text": "巡视", **extra}
    with pytest.raises(Rejected) as refused:
        decode_mqtt("sitewatch/logs/E2", json.dumps(body).encode(), now=NOW)
    assert refused.value.reason == "bad_value" and "POST /api/records" in refused.value.message
