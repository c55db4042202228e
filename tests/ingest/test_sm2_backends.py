"""SM2 verification backends (gm.algorithms.SM2_BACKENDS: OpenSSL 3 through ctypes, gmssl_pyx)
agree with each other and with the pure-Python gmssl, on signatures made by gmssl_pyx, by the
pure-Python gmssl and by the openssl command line; on the table path and the plain path; and
on the edge cases (t = 0, s*G + t*P_A at infinity, out-of-range r or s)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from gmssl import sm2 as pure_sm2
from hypothesis import given, settings
from hypothesis import strategies as st

from gm import algorithms as gm
from gm import sm2_openssl

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
ROOT = Path(__file__).resolve().parents[2]
BACKENDS = sorted(gm.SM2_BACKENDS)


def test_openssl_is_the_backend_in_use() -> None:
    # Debian 12's libcrypto.so.3 has SM2: a silent fall back to gmssl_pyx is a 5x slow-down
    assert gm.SM2_BACKEND == "openssl"
    assert BACKENDS == ["gmssl_pyx", "openssl"]


def _rs(sig_hex: str) -> tuple[int, int]:
    rs = gm._signature_rs(sig_hex)
    assert rs is not None
    return rs


def _pure(pub: str, priv: str | None = None, *, asn1: bool) -> pure_sm2.CryptSM2:
    c = pure_sm2.CryptSM2(private_key=priv, public_key=pub, asn1=asn1)
    c.public_key = pub  # its constructor lstrip("04")s away leading digits of x
    return c


def _answers(pub: str, data: bytes, sig: str) -> dict[str, bool]:
    """Every backend's answer, the pure-Python gmssl's and verify_sm2's."""
    out: dict[str, bool] = {"verify_sm2": gm.verify_sm2(pub, data, sig)}
    rs = gm._signature_rs(sig)
    pub64 = bytes.fromhex(pub)
    for name in BACKENDS:
        out[name] = rs is not None and gm.SM2_BACKENDS[name](pub64, data, *rs)
    if rs is not None:
        raw = rs[0].to_bytes(32, "big").hex() + rs[1].to_bytes(32, "big").hex()
        try:
            out["gmssl (pure)"] = bool(_pure(pub, asn1=False).verify_with_sm3(raw, data))
        except TypeError:  # its way of meeting s*G + t*P_A at infinity
            out["gmssl (pure)"] = False
    return out


def _flip(hex_text: str, nibble: int) -> str:
    i = nibble % len(hex_text)
    return hex_text[:i] + format(int(hex_text[i], 16) ^ 1, "x") + hex_text[i + 1 :]


def _openssl_signed(tmp: Path, data: bytes) -> tuple[str, str]:
    """(public x||y hex, DER signature hex) made by the openssl command line (its own SM2)."""
    key, msg, sig = tmp / "k.pem", tmp / "m", tmp / "s"
    msg.write_bytes(data)
    run = ["openssl"]
    subprocess.run([*run, "genpkey", "-algorithm", "SM2", "-out", str(key)], check=True)
    subprocess.run(
        [*run, "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-in", str(msg)]
        + ["-inkey", str(key), "-pkeyopt", "distid:1234567812345678", "-out", str(sig)],
        check=True,
    )
    spki = subprocess.run(
        [*run, "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return spki[-64:].hex(), sig.read_bytes().hex()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_signed_by_the_openssl_command_verified_by_all(tmp_path: Path) -> None:
    data = '{"msg_id":"o1","text":"旁站监理"}'.encode()
    pub, sig = _openssl_signed(tmp_path, data)
    assert all(_answers(pub, data, sig).values()), _answers(pub, data, sig)
    assert not any(_answers(pub, data + b" ", sig).values())
    assert not any(_answers(pub, data, _flip(sig, 20)).values())


@pytest.mark.parametrize("der", [True, False])
def test_signed_by_pure_gmssl_and_gmssl_pyx_verified_by_all(der: bool) -> None:
    priv, pub = gm.generate_sm2_keypair()
    other = gm.generate_sm2_keypair()[1]
    data = b'{"engineer_id":"E1","lat":22.5}'
    for sig in (
        gm.sign_sm2(priv, data, public_key_hex=pub, der=der),
        _pure(pub, priv, asn1=der).sign_with_sm3(data),
    ):
        assert all(_answers(pub, data, sig).values())
        assert all(_answers(pub, data, sig).values())  # second use: the table path
        assert all(_answers(pub, data, sig).values())
        assert not any(_answers(pub, data + b"x", sig).values())
        assert not any(_answers(other, data, sig).values())
        assert not any(_answers(pub, data, _flip(sig, len(sig) - 1)).values())


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, N - 2),
    data=st.binary(max_size=300),
    der=st.booleans(),
    tamper=st.sampled_from(["none", "data", "sig", "key"]),
    where=st.integers(0, 10_000),
)
def test_random_keys_and_messages_all_agree(
    d: int, data: bytes, der: bool, tamper: str, where: int
) -> None:
    priv = d.to_bytes(32, "big")
    pub = gm.public_key_from_private(priv)
    sig = gm.sign_sm2(priv, data, public_key_hex=pub, der=der)
    if tamper == "data":
        i = where % max(len(data), 1)
        data = data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :] if data else b"\x00"
    elif tamper == "sig":
        sig = _flip(sig, where)
    elif tamper == "key":
        pub = gm.public_key_from_private(((d % (N - 3)) + 1).to_bytes(32, "big"))
    for _ in range(2):  # first use (plain path), then with the key's table
        answers = _answers(pub, data, sig)
        assert len(set(answers.values())) == 1, answers
        if gm._signature_rs(sig) is not None:
            assert answers["verify_sm2"] is (tamper == "none"), answers


def test_t_zero_and_point_at_infinity_are_invalid() -> None:
    d = 0x1234567
    priv = d.to_bytes(32, "big")
    pub = gm.public_key_from_private(priv)
    data = b"edge"
    r = 0xABCDEF
    s_t0 = N - r  # t = r + s = 0 mod n
    s_inf = (-r * d) * pow(1 + d, -1, N) % N  # s + (r + s) d = 0: s*G + t*P_A = O
    for s in (s_t0, s_inf):
        sig = r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex()
        for _ in range(3):
            answers = _answers(pub, data, sig)
            assert not any(answers.values()), answers


def test_garbage_is_false_on_every_backend() -> None:
    priv, pub = gm.generate_sm2_keypair()
    good = gm.sign_sm2(priv, b"x", public_key_hex=pub, der=False)
    r, s = _rs(good)
    for name in BACKENDS:
        verify = gm.SM2_BACKENDS[name]
        assert verify(bytes.fromhex(pub), b"x", r, s)
        assert not verify(b"\x11" * 64, b"x", r, s)  # not on the curve
        assert not verify(bytes.fromhex(pub), b"x", s, r)
    for sig in ("00" * 32 + good[64:], good[:64] + "00" * 32, "ff" * 64, good[:-2], "30" * 40):
        assert not any(_answers(pub, b"x", sig).values())


def test_table_eviction_keeps_answers_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sm2_openssl, "TABLES_MAX", 2)
    monkeypatch.setattr(sm2_openssl, "KEYS_MAX", 3)
    v = sm2_openssl.load(gm.SM2_USER_ID)
    assert v is not None
    keys = [gm.generate_sm2_keypair() for _ in range(5)]
    signed = [
        (bytes.fromhex(pub), _rs(gm.sign_sm2(p, b"m", public_key_hex=pub))) for p, pub in keys
    ]
    for _ in range(4):
        for pub64, (r, s) in signed:
            assert v.verify(pub64, b"m", r, s)
            assert v.verify(pub64, b"m", r, s)
            assert not v.verify(pub64, b"n", r, s)
            stats = v.stats()
            assert stats["keys"] <= 3 and 1 <= stats["tables"] <= 2


def test_keys_taking_turns_build_tables_at_a_bounded_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sm2_openssl, "TABLES_MAX", 2)
    monkeypatch.setattr(sm2_openssl, "BUILD_EVERY", 8)
    monkeypatch.setattr(sm2_openssl, "BUILD_BURST", 2.0)
    v = sm2_openssl.load(gm.SM2_USER_ID)
    assert v is not None
    keys = [gm.generate_sm2_keypair() for _ in range(5)]
    signed = [
        (bytes.fromhex(pub), _rs(gm.sign_sm2(p, b"m", public_key_hex=pub))) for p, pub in keys
    ]
    for i in range(200):  # 5 keys in turn, 2 tables: LRU alone would rebuild every other use
        pub64, (r, s) = signed[i % 5]
        assert v.verify(pub64, b"m", r, s)
    assert v.stats()["built"] <= 2 + 200 // 8
    v.clear()
    pub64, (r, s) = signed[0]
    for _ in range(50):  # one key: one table, at its second use
        assert v.verify(pub64, b"m", r, s)
    assert v.stats() == {"keys": 1, "tables": 1, "built": 1}


def test_threads_share_one_verifier() -> None:
    v = sm2_openssl.load(gm.SM2_USER_ID)
    assert v is not None
    keys = [gm.generate_sm2_keypair() for _ in range(4)]
    jobs = [
        (bytes.fromhex(pub), _rs(gm.sign_sm2(p, b"t%d" % i, public_key_hex=pub)), b"t%d" % i)
        for i, (p, pub) in enumerate(keys)
    ]
    wrong: list[int] = []

    def work(i: int) -> None:
        for k in range(150):
            pub64, (r, s), data = jobs[(i + k) % len(jobs)]
            if not v.verify(pub64, data, r, s) or v.verify(pub64, data + b"!", r, s):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_a_failing_self_test_means_no_openssl_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sm2_openssl, "_KAT_R", sm2_openssl._KAT_R ^ 2)
    assert sm2_openssl.load(gm.SM2_USER_ID) is None
    monkeypatch.undo()
    assert sm2_openssl.load(gm.SM2_USER_ID) is not None


def test_environment_forces_gmssl_pyx() -> None:
    code = "from gm import algorithms as a; print(a.SM2_BACKEND, sorted(a.SM2_BACKENDS))"
    env = {**os.environ, "SITEWATCH_SM2_BACKEND": "gmssl_pyx"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "gmssl_pyx ['gmssl_pyx']"


def test_verify_rates_measures_every_backend() -> None:
    # which is faster is the benchmark's to say (`sitewatch bench`, docs/BENCHMARKS.md), not a
    # test's: here only that every backend is measured
    rates = gm.verify_rates(50)
    assert set(rates) == {"openssl", "openssl new keys", "gmssl_pyx", "gmssl_pyx new keys"}
    assert all(rate > 0 for rate in rates.values()), rates
