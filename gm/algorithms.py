"""National (GM/T) algorithms behind tiny functions.

* SM2 signatures with SM3 and the GB/T 32918 default user id ``1234567812345678``;
  signatures in hex, either ASN.1 DER (``SEQUENCE {INTEGER r, INTEGER s}``) or the raw
  64-byte ``r||s``; public keys as hex of the 64-byte ``x||y`` point, with or without the
  ``04`` prefix (CONTRACT.md section 3). Verification never raises: garbage is ``False``.
* SM3 hashes and SM3-HMAC (device telemetry MACs), constant-time MAC comparison.
* SM4 for personal data at rest: SM4-GCM, a fresh random 12-byte nonce per value, 16-byte
  tag; blob = ``b"\\x01" || nonce || ciphertext || tag`` (the first byte is a format version,
  also the GCM associated data); the plaintext is ``b"\\x00" || UTF-8 text`` so that empty
  strings encrypt too (GmSSL refuses an empty GCM plaintext).
* :func:`canonical_bytes` - the bytes signatures, MACs and the evidence chain cover.

All heavy lifting is done by GmSSL through ``gmssl_pyx``, except SM2 verification, which uses
OpenSSL 3's libcrypto when it is there (:mod:`gm.sm2_openssl`, ~5x faster for repeated keys).
"""

from __future__ import annotations

import hmac
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import gmssl_pyx
import orjson

from gm import sm2_openssl

__all__ = [
    "SM2_BACKEND",
    "SM2_BACKENDS",
    "SM2_USER_ID",
    "canonical_bytes",
    "generate_sm2_keypair",
    "hmac_rate",
    "normalize_public_key",
    "public_key_from_private",
    "sign_sm2",
    "sm3_hex",
    "sm3_hmac_hex",
    "sm4_decrypt",
    "sm4_encrypt",
    "verify_mac",
    "verify_rate",
    "verify_rates",
    "verify_sm2",
]

SM2_USER_ID = b"1234567812345678"  # GB/T 32918 default signer id
_EXCLUDED = ("sig", "mac")

# SM2 curve (GB/T 32918.5) - only used to derive a public key from a private one.
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

_SM4_VERSION = b"\x01"
_SM4_NONCE = 12
_SM4_TAG = 16


# --------------------------------------------------------------------------- canonical form


def canonical_bytes(obj: Mapping[str, Any]) -> bytes:
    """The JSON object without ``sig``/``mac``: keys sorted, separators ``,`` ``:``, UTF-8,
    non-ASCII unescaped - byte for byte what
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` gives
    (floats use Python's shortest repr, e.g. ``1e-05``, ``1e+16``).

    Raises ``ValueError`` for NaN/Infinity or unpaired surrogates, ``TypeError`` for values
    that are not JSON.

    Fast path: orjson (``OPT_SORT_KEYS``) writes exactly the same bytes for str keys, str,
    bool, None, 64-bit ints and floats of magnitude 0 or >= 1e-4 (below that it spells
    exponents differently: ``1e-5`` for Python's ``1e-05``); anything else takes ``json``.
    Equality of both paths is tested with hypothesis.
    """
    body = {k: v for k, v in obj.items() if k not in _EXCLUDED}
    if _orjson_same(body):
        try:
            return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass  # e.g. an unpaired surrogate: json raises the documented error
    return _json_canonical(body)


def _json_canonical(body: Mapping[str, Any]) -> bytes:
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogate in a string
        raise ValueError(f"not encodable as UTF-8: {exc.reason}") from exc


def _orjson_same(value: Any, depth: int = 0) -> bool:
    """True when orjson serialises ``value`` exactly like ``json.dumps`` (see above)."""
    t = type(value)
    if t is dict:
        if depth > 64:
            return False
        for k, v in value.items():
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is float:
                a = abs(v)
                if a == 0.0 or (a >= 1e-4 and a != math.inf):
                    continue
                return False
            if not _orjson_same(v, depth + 1):
                return False
        return True
    if t is str or t is bool or value is None:
        return True
    if t is float:
        a = abs(value)
        return a == 0.0 or (a >= 1e-4 and a != math.inf)
    if t is int:
        return -(2**63) <= value < 2**64
    if t is list:
        if depth > 64:
            return False
        for v in value:
            if not _orjson_same(v, depth + 1):
                return False
        return True
    return False


# --------------------------------------------------------------------------- SM3


def sm3_hex(data: bytes) -> str:
    """SM3 digest of ``data`` as 64 lowercase hex characters."""
    return bytes(gmssl_pyx.sm3_hash(data)).hex()


def sm3_hmac_hex(key: bytes, data: bytes) -> str:
    """SM3-HMAC of ``data`` with ``key`` as 64 lowercase hex characters."""
    return bytes(gmssl_pyx.sm3_hmac(key, data)).hex()


def verify_mac(key: bytes, data: bytes, mac_hex: str) -> bool:
    """True when ``mac_hex`` (any case) is the SM3-HMAC of ``data``; constant-time compare.

    Never raises: a MAC that is not 64 hex characters is simply ``False``.
    """
    try:
        if not isinstance(mac_hex, str) or len(mac_hex) != 64:
            return False
        given = bytes.fromhex(mac_hex)
        expected = bytes(gmssl_pyx.sm3_hmac(key, data))
    except (ValueError, TypeError, gmssl_pyx.GmsslInnerError):
        return False
    return hmac.compare_digest(expected, given)


# --------------------------------------------------------------------------- SM2


@lru_cache(maxsize=4096)
def normalize_public_key(public_key_hex: str) -> bytes | None:
    """64-byte ``x||y`` of a hex public key (with or without ``04``), or None if invalid
    (wrong length, not hex, not on the curve). Cached: keys repeat across messages."""
    try:
        text = public_key_hex.strip()
        if len(text) not in (128, 130):
            return None
        return bytes(gmssl_pyx.normalize_sm2_public_key(text))
    except Exception:  # noqa: BLE001 - garbage in, None out
        return None


def _der_int(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return b"\x02" + bytes([len(raw)]) + raw


def _rs_to_der(rs: bytes) -> bytes | None:
    r = int.from_bytes(rs[:32], "big")
    s = int.from_bytes(rs[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return None
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _parse_der(der: bytes) -> tuple[int, int] | None:
    """Strict DER ``SEQUENCE {INTEGER r, INTEGER s}`` (short-form lengths suffice)."""
    if len(der) < 8 or der[0] != 0x30 or der[1] != len(der) - 2:
        return None
    pos = 2
    out: list[int] = []
    for _ in range(2):
        if pos + 2 > len(der) or der[pos] != 0x02:
            return None
        n = der[pos + 1]
        start = pos + 2
        if n == 0 or n > 33 or start + n > len(der):
            return None
        raw = der[start : start + n]
        if raw[0] & 0x80:  # negative
            return None
        if n > 1 and raw[0] == 0 and not raw[1] & 0x80:  # non-minimal
            return None
        out.append(int.from_bytes(raw, "big"))
        pos = start + n
    if pos != len(der):
        return None
    r, s = out
    if not (0 < r < _N and 0 < s < _N):
        return None
    return r, s


def _signature_rs(sig_hex: str) -> tuple[int, int] | None:
    """``(r, s)``, both in ``[1, n-1]``, of a hex signature: 64-byte ``r||s`` or strict DER."""
    if not isinstance(sig_hex, str) or len(sig_hex) > 160:
        return None
    try:
        raw = bytes.fromhex(sig_hex.strip())
    except ValueError:
        return None
    if len(raw) == 64:  # r||s (a 64-byte DER signature would need both r and s < 2^240)
        r = int.from_bytes(raw[:32], "big")
        s = int.from_bytes(raw[32:], "big")
        return (r, s) if 0 < r < _N and 0 < s < _N else None
    return _parse_der(raw)


def _verify_gmssl_pyx(pub: bytes, data: bytes, r: int, s: int) -> bool:
    der = _rs_to_der(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    try:
        return der is not None and bool(gmssl_pyx.sm2_verify(pub, data, der, SM2_USER_ID))
    except Exception:  # noqa: BLE001 - e.g. a point not on the curve: invalid, not an error
        return False


def _sm2_backends() -> dict[str, Callable[[bytes, bytes, int, int], bool]]:
    backends: dict[str, Callable[[bytes, bytes, int, int], bool]] = {}
    if os.environ.get("SITEWATCH_SM2_BACKEND", "openssl") == "openssl":
        fast = sm2_openssl.load(SM2_USER_ID)
        if fast is not None:
            backends["openssl"] = fast.verify
    backends["gmssl_pyx"] = _verify_gmssl_pyx
    return backends


# OpenSSL 3 (libcrypto through ctypes, tables per repeated key; gm/sm2_openssl.py) when it
# loads and passes its self-test, else gmssl_pyx; SITEWATCH_SM2_BACKEND=gmssl_pyx forces it.
SM2_BACKENDS = _sm2_backends()
SM2_BACKEND = next(iter(SM2_BACKENDS))
_verify_rs = SM2_BACKENDS[SM2_BACKEND]


def verify_sm2(public_key_hex: str, data: bytes, sig_hex: str) -> bool:
    """True when ``sig_hex`` (DER or 64-byte ``r||s``, hex) is a valid SM2-with-SM3
    signature of ``data`` under ``public_key_hex`` (``x||y``, optional ``04`` prefix) with the
    default user id. Never raises. Verified by :data:`SM2_BACKEND`."""
    try:
        if not isinstance(public_key_hex, str):
            return False
        pub = normalize_public_key(public_key_hex)
        if pub is None:
            return False
        rs = _signature_rs(sig_hex)
        if rs is None:
            return False
        return _verify_rs(pub, bytes(data), rs[0], rs[1])
    except Exception:  # noqa: BLE001 - verification of garbage is False, never an error
        return False


def _ec_add(p1: tuple[int, int] | None, p2: tuple[int, int] | None) -> tuple[int, int] | None:
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1 = p1
    x2, y2 = p2
    if x1 == x2:
        if (y1 + y2) % _P == 0:
            return None
        lam = (3 * x1 * x1 + _A) * pow(2 * y1, -1, _P) % _P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, _P) % _P
    x3 = (lam * lam - x1 - x2) % _P
    return x3, (lam * (x1 - x3) - y1) % _P


@lru_cache(maxsize=256)
def public_key_from_private(private_key: bytes) -> str:
    """Hex ``x||y`` (no prefix) of the public key of a 32-byte private key (pure Python,
    a few ms; cached - meant for simulators and tests)."""
    d = int.from_bytes(private_key, "big")
    if not 0 < d < _N - 1:
        raise ValueError("SM2 private key out of range")
    result: tuple[int, int] | None = None
    addend: tuple[int, int] | None = (_GX, _GY)
    while d:
        if d & 1:
            result = _ec_add(result, addend)
        addend = _ec_add(addend, addend)
        d >>= 1
    assert result is not None
    return result[0].to_bytes(32, "big").hex() + result[1].to_bytes(32, "big").hex()


def _private_bytes(private_key: bytes | str) -> bytes:
    raw = bytes.fromhex(private_key) if isinstance(private_key, str) else bytes(private_key)
    if len(raw) != 32:
        raise ValueError("SM2 private key must be 32 bytes (64 hex characters)")
    return raw


def generate_sm2_keypair() -> tuple[str, str]:
    """A fresh ``(private_hex, public_hex)``: 32-byte private key and 64-byte ``x||y`` public
    key (no ``04`` prefix), both hex."""
    public, private = gmssl_pyx.sm2_key_generate()
    return bytes(private).hex(), bytes(public).hex()


def sign_sm2(
    private_key: bytes | str, data: bytes, *, public_key_hex: str | None = None, der: bool = True
) -> str:
    """Hex SM2-with-SM3 signature of ``data`` (default user id): DER by default, the 64-byte
    ``r||s`` with ``der=False``. ``private_key`` is 32 bytes or their hex; the public key is
    derived when not given. For simulators and tests."""
    priv = _private_bytes(private_key)
    pub_hex = public_key_hex if public_key_hex is not None else public_key_from_private(priv)
    pub = normalize_public_key(pub_hex)
    if pub is None:
        raise ValueError("invalid SM2 public key")
    sig = bytes(gmssl_pyx.sm2_sign(priv, pub, bytes(data), SM2_USER_ID))
    if der:
        return sig.hex()
    parsed = _parse_der(sig)
    if parsed is None:  # pragma: no cover - GmSSL always emits valid DER
        raise ValueError("GmSSL returned an unparsable signature")
    r, s = parsed
    return r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex()


# --------------------------------------------------------------------------- SM4 at rest


def sm4_encrypt(key16: bytes, plaintext: str) -> bytes:
    """SM4-GCM encryption of a personal field. A fresh random 12-byte nonce per call, so equal
    plaintexts give different blobs. Blob: ``0x01 || nonce(12) || ciphertext || tag(16)``."""
    if len(key16) != 16:
        raise ValueError("SM4 key must be 16 bytes")
    nonce = os.urandom(_SM4_NONCE)
    ct, tag = gmssl_pyx.sm4_gcm_encrypt(
        bytes(key16), nonce, _SM4_VERSION, b"\x00" + plaintext.encode("utf-8")
    )
    return _SM4_VERSION + nonce + bytes(ct) + bytes(tag)


def sm4_decrypt(key16: bytes, blob: bytes) -> str:
    """Inverse of :func:`sm4_encrypt`. Raises ``ValueError`` on a wrong key or tampering."""
    if len(key16) != 16:
        raise ValueError("SM4 key must be 16 bytes")
    if len(blob) < 1 + _SM4_NONCE + _SM4_TAG or blob[:1] != _SM4_VERSION:
        raise ValueError("not an SM4 blob of format 1")
    nonce = blob[1 : 1 + _SM4_NONCE]
    ct = blob[1 + _SM4_NONCE : -_SM4_TAG]
    tag = blob[-_SM4_TAG:]
    try:
        plain = gmssl_pyx.sm4_gcm_decrypt(bytes(key16), nonce, _SM4_VERSION, ct, tag)
    except gmssl_pyx.GmsslInnerError as exc:
        raise ValueError("SM4-GCM authentication failed (wrong key or altered data)") from exc
    plain = bytes(plain)
    if plain[:1] != b"\x00":
        raise ValueError("not an SM4 blob of format 1")
    return plain[1:].decode("utf-8")


# --------------------------------------------------------------------------- rates


def verify_rate(n: int = 2000, backend: str | None = None, *, keys: int = 1) -> float:
    """SM2 verifications per second of CPU (one core) through :func:`verify_sm2` with
    ``backend`` (a key of :data:`SM2_BACKENDS`; default :data:`SM2_BACKEND`), caches emptied
    first. The ``n`` verifications take turns over ``keys`` key pairs: 1 is one engineer's
    fixes, ``n`` a key never seen before for each (signing takes ~0.3 ms a key, not counted)."""
    global _verify_rs
    data = canonical_bytes(
        {"msg_id": "bench", "engineer_id": "E1", "ts": 1.7e9, "lat": 22.5, "lon": 114.0}
    )
    pairs = []
    for _ in range(max(1, min(keys, n))):
        priv, pub = generate_sm2_keypair()
        pairs.append((pub, sign_sm2(priv, data, public_key_hex=pub)))
    triples = [pairs[i % len(pairs)] for i in range(n)]
    chosen = SM2_BACKENDS[backend or SM2_BACKEND]
    saved, _verify_rs = _verify_rs, chosen
    try:
        assert verify_sm2(pairs[0][0], data, pairs[0][1])
        normalize_public_key.cache_clear()
        _clear_sm2_caches()
        start = time.process_time()
        for pub, sig in triples:
            verify_sm2(pub, data, sig)
        return n / max(time.process_time() - start, 1e-9)
    finally:
        _verify_rs = saved


def _clear_sm2_caches() -> None:
    for backend in SM2_BACKENDS.values():
        owner = getattr(backend, "__self__", None)
        if isinstance(owner, sm2_openssl.OpenSslSm2):
            owner.clear()


def verify_rates(n: int = 2000) -> dict[str, float]:
    """:func:`verify_rate` of every available backend, one key and new keys, in one run:
    ``{"openssl": ..., "openssl new keys": ..., "gmssl_pyx": ..., ...}``."""
    rates: dict[str, float] = {}
    for name in SM2_BACKENDS:
        rates[name] = verify_rate(n, name)
        rates[f"{name} new keys"] = verify_rate(n, name, keys=n)
    return rates


def hmac_rate(n: int = 100_000) -> float:
    """SM3-HMAC verifications per second through :func:`verify_mac`."""
    key = os.urandom(16)
    data = canonical_bytes(
        {"msg_id": "bench", "ts": 1.7e9, "metrics": {"pm25": 35.2, "noise_db": 61.0}}
    )
    mac = sm3_hmac_hex(key, data)
    start = time.perf_counter()
    for _ in range(n):
        verify_mac(key, data, mac)
    return n / (time.perf_counter() - start)
