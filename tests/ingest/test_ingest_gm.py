from __future__ import annotations

import json

import pytest
from gmssl import sm2 as pure_sm2
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import algorithms as gm

JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
JSON = st.recursive(
    JSON_LEAF,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=10), JSON, max_size=8))
def test_canonical_bytes_equals_python_json_dumps(obj: dict) -> None:
    try:
        expected = json.dumps(
            {k: v for k, v in obj.items() if k not in ("sig", "mac")},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from hypothesis text
        with pytest.raises(ValueError):
            gm.canonical_bytes(obj)
        return
    assert gm.canonical_bytes(obj) == expected


def test_canonical_bytes_drops_sig_and_mac_and_formats_floats() -> None:
    obj = {"b": 1e16, "a": 1e-05, "sig": "00", "mac": "11", "中": "文", "c": -0.0}
    assert gm.canonical_bytes(obj) == '{"a":1e-05,"b":1e+16,"c":-0.0,"中":"文"}'.encode()
    with pytest.raises(ValueError):
        gm.canonical_bytes({"x": float("nan")})


def test_sm3_known_vector_and_hmac() -> None:
    # GB/T 32905 example 1
    assert gm.sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    key = b"k" * 16
    mac = gm.sm3_hmac_hex(key, b"data")
    assert len(mac) == 64
    assert gm.verify_mac(key, b"data", mac)
    assert gm.verify_mac(key, b"data", mac.upper())
    assert not gm.verify_mac(key, b"datA", mac)
    assert not gm.verify_mac(b"x" * 16, b"data", mac)
    for garbage in ("", "zz" * 32, mac[:-2], mac + "00", None, 5):
        assert not gm.verify_mac(key, b"data", garbage)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return gm.generate_sm2_keypair()


def _pure(priv: str, pub: str, *, asn1: bool) -> pure_sm2.CryptSM2:
    c = pure_sm2.CryptSM2(private_key=priv, public_key=pub, asn1=asn1)
    # gmssl's constructor does public_key.lstrip("04"), which eats leading 0/4 digits of x:
    # set the x||y hex directly.
    c.public_key = pub
    return c


def test_public_key_derivation_matches_gmssl(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    assert gm.public_key_from_private(bytes.fromhex(priv)) == pub
    assert len(pub) == 128


@pytest.mark.parametrize("der", [True, False])
def test_sign_with_gmssl_pyx_verify_with_pure_gmssl(keypair: tuple[str, str], der: bool) -> None:
    priv, pub = keypair
    data = gm.canonical_bytes({"msg_id": "m1", "engineer_id": "E1", "ts": 1.7e9, "lat": 22.5})
    sig = gm.sign_sm2(priv, data, der=der)
    if not der:
        assert len(sig) == 128
    else:
        assert sig.startswith("30")
    assert _pure(priv, pub, asn1=der).verify_with_sm3(sig, data)
    assert not _pure(priv, pub, asn1=der).verify_with_sm3(sig, data + b" ")


@pytest.mark.parametrize("der", [True, False])
@pytest.mark.parametrize("prefix", ["", "04"])
def test_sign_with_pure_gmssl_verify_with_verify_sm2(
    keypair: tuple[str, str], der: bool, prefix: str
) -> None:
    priv, pub = keypair
    data = '{"msg_id":"m2","text":"旁站监理"}'.encode()
    sig = _pure(priv, pub, asn1=der).sign_with_sm3(data)
    assert gm.verify_sm2(prefix + pub, data, sig)
    assert gm.verify_sm2((prefix + pub).upper(), data, sig.upper())
    assert not gm.verify_sm2(prefix + pub, data + b"x", sig)
    other_pub = gm.generate_sm2_keypair()[1]
    assert not gm.verify_sm2(other_pub, data, sig)


def test_verify_sm2_never_raises_on_garbage(keypair: tuple[str, str]) -> None:
    priv, pub = keypair
    data = b"payload"
    good = gm.sign_sm2(priv, data)
    for key in ("", "04", "zz" * 64, "00" * 64, pub[:-2], "05" + pub, None, 12):
        assert not gm.verify_sm2(key, data, good)  # type: ignore[arg-type]
    for sig in ("", "30", "zz", "00" * 64, "ff" * 64, good[:-2], good + "00", "30" * 40, None, 1):
        assert not gm.verify_sm2(pub, data, sig)  # type: ignore[arg-type]
    assert gm.verify_sm2(pub, data, good)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.binary(max_size=64))
def test_verify_sm2_random_inputs(sig: str, data: bytes) -> None:
    assert gm.verify_sm2("04" + "11" * 64, data, sig) is False


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=80).map(bytes.hex))
def test_verify_sm2_random_hex_signatures(sig: str) -> None:
    _, pub = gm.generate_sm2_keypair()
    assert gm.verify_sm2(pub, b"x", sig) is False


def test_sm4_roundtrip_random_nonce_and_tamper() -> None:
    key = bytes(range(16))
    a = gm.sm4_encrypt(key, "110101199003078888")
    b = gm.sm4_encrypt(key, "110101199003078888")
    assert a != b
    assert gm.sm4_decrypt(key, a) == "110101199003078888"
    assert gm.sm4_decrypt(key, gm.sm4_encrypt(key, "")) == ""
    assert gm.sm4_decrypt(key, gm.sm4_encrypt(key, "张三 13800138000")) == "张三 13800138000"
    tampered = a[:-1] + bytes([a[-1] ^ 1])
    with pytest.raises(ValueError):
        gm.sm4_decrypt(key, tampered)
    with pytest.raises(ValueError):
        gm.sm4_decrypt(b"\x01" * 16, a)
    with pytest.raises(ValueError):
        gm.sm4_decrypt(key, b"\x02" + a[1:])
    with pytest.raises(ValueError):
        gm.sm4_encrypt(b"short", "x")


def test_rates_are_positive() -> None:
    assert gm.verify_rate(50) > 0
    assert gm.hmac_rate(1000) > 0
