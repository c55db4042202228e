"""Signed check-ins on the running stack: an engineer registered with an SM2 public key must
sign (DER or r||s, over the canonical JSON); unsigned, badly signed and altered messages are
refused with their reason. Signatures made by the pure-Python `gmssl` package verify too."""

from __future__ import annotations

from gmssl import sm2 as pure_sm2

from gm.algorithms import canonical_bytes, generate_sm2_keypair
from tests.ingest_stack.helpers import (
    checkin,
    fix_rows,
    mosquitto_pub,
    register_engineer,
    signed,
    tag,
    utcnow,
    wait_fixes,
    wait_rejected,
)
from tests.stack_client import StackClient


def test_signed_checkins(sw: StackClient) -> None:
    private, public = generate_sm2_keypair()
    eid = f"IS-SIG-{tag()}"
    password = register_engineer(sw, eid, sm2_public_key="04" + public)
    topic = f"sitewatch/checkin/{eid}"
    since = utcnow()

    def pub(payload: object) -> None:
        mosquitto_pub(sw, topic, payload, user=eid, password=password)

    pub(signed(checkin(eid, f"{eid}-der", kind="checkin"), private, public, der=True))
    pub(signed(checkin(eid, f"{eid}-rs"), private, public, der=False))
    # signed by the pure-Python gmssl package (r||s hex, SM3 with the default user id)
    obj = checkin(eid, f"{eid}-gmssl")
    signer = pure_sm2.CryptSM2(private_key=private, public_key=public, asn1=False)
    signer.public_key = public
    obj["sig"] = signer.sign_with_sm3(canonical_bytes(obj))
    pub(obj)
    pub(checkin(eid, f"{eid}-unsigned"))
    other_private, other_public = generate_sm2_keypair()
    pub(signed(checkin(eid, f"{eid}-otherkey"), other_private, other_public))
    altered = signed(checkin(eid, f"{eid}-altered"), private, public)
    altered["lat"] += 0.01
    pub(altered)
    pub({**checkin(eid, f"{eid}-garbage"), "sig": "zz" * 40})

    good = {f"{eid}-der", f"{eid}-rs", f"{eid}-gmssl"}
    assert wait_fixes(sw, eid, good) == dict.fromkeys(good, 1)
    rows = wait_rejected(sw, since, lambda r: r["topic"] == topic, count=4)
    reasons = {
        msg: r["reason"]
        for r in rows
        for msg in ("unsigned", "otherkey", "altered", "garbage")
        if f"{eid}-{msg}" in r["excerpt"]
    }
    assert reasons == {
        "unsigned": "unsigned",
        "otherkey": "bad_signature",
        "altered": "bad_signature",
        "garbage": "bad_signature",
    }
    assert set(fix_rows(sw, eid)) == good
