"""Personal data (id_number, phone) is SM4-encrypted at rest with a key that is not in the
database, and masked in every response."""

from __future__ import annotations

import json
import random

from gm.algorithms import sm4_decrypt
from stack.up import Stack
from tests.api.conftest import register_engineer, tag, token
from tests.stack_client import StackClient


def _tables(sw: StackClient) -> list[str]:
    return [r[0] for r in sw.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def test_plaintext_is_not_in_the_database_and_responses_are_masked(
    sw: StackClient, running_stack: Stack
) -> None:
    eid = f"PD-E-{tag()}"
    rnd = random.Random(eid)
    id_number = "44030519" + "".join(rnd.choice("0123456789") for _ in range(9)) + "X"
    phone = "139" + "".join(rnd.choice("0123456789") for _ in range(8))
    register_engineer(sw, eid, "440305", id_number=id_number, phone=phone)

    # the raw row: neither value in any column, in any encoding PostgreSQL shows
    (row,) = sw.sql("SELECT row_to_json(e)::text FROM engineers e WHERE id = %s", eid)
    raw = row[0]
    for secret in (id_number, phone):
        assert secret not in raw
        assert secret.encode().hex() not in raw
        assert secret[:-4] not in raw  # not even the part that is masked
    (blobs,) = sw.sql(
        "SELECT id_number_enc, phone_enc, id_number_last4, phone_last4 FROM engineers WHERE id = %s",
        eid,
    )
    for blob, secret in zip(blobs[:2], (id_number, phone), strict=True):
        assert secret.encode() not in bytes(blob)
    assert blobs[2:] == (id_number[-4:], phone[-4:])  # kept in clear for masking only

    # nowhere else either: every table, as text
    for table in _tables(sw):
        found = sw.sql(
            f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s OR t::text LIKE %s',
            f"%{id_number}%",
            f"%{phone}%",
        )
        assert found == [(0,)], table

    # the key decrypts them, and the key is not in the database
    key_hex = running_stack.env["SITEWATCH_PERSONAL_DATA_KEY"]
    key = bytes.fromhex(key_hex)
    assert sm4_decrypt(key, bytes(blobs[0])) == id_number
    assert sm4_decrypt(key, bytes(blobs[1])) == phone
    for table in _tables(sw):
        assert sw.sql(
            f'SELECT count(*) FROM "{table}" t WHERE t::text ILIKE %s', f"%{key_hex}%"
        ) == [(0,)], table

    # the same values again give different ciphertexts (random nonce): no equality leak
    other = f"PD-E2-{tag()}"
    register_engineer(sw, other, "440305", id_number=id_number, phone=phone)
    enc = sw.sql("SELECT id_number_enc FROM engineers WHERE id = ANY(%s)", [eid, other])
    assert len({bytes(r[0]) for r in enc}) == 2

    # every response masks them, whoever asks
    regulator = token(sw, "regulator", region_code="440300")
    own = token(sw, "engineer", engineer_id=eid)
    for tok in (None, regulator, own):
        with sw.api(tok) as api:
            for path in (f"/api/engineers/{eid}", "/api/engineers"):
                r = api.get(path)
                assert r.status_code == 200, (path, r.text)
                text = r.text
                assert id_number not in text and phone not in text
                assert id_number[:-4] not in text and phone[:-4] not in text
            one = api.get(f"/api/engineers/{eid}").json()
            assert one["id_number"] == "*" * 14 + id_number[-4:]
            assert one["phone"] == "*" * 7 + phone[-4:]
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": f"PD-E3-{tag()}",
                "name": "王工",
                "registered_region": "440305",
                "cert_status": "valid",
                "id_number": id_number,
                "phone": phone,
            },
        )
    assert r.status_code == 201
    assert id_number not in json.dumps(r.json()) and phone not in json.dumps(r.json())
