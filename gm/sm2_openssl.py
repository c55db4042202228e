"""SM2-with-SM3 signature verification on OpenSSL 3's libcrypto, through ctypes.

Debian 12's ``libcrypto.so.3`` (package libssl3, which Python itself depends on) has the SM2
curve; this module binds the few functions it needs with :mod:`ctypes` (nothing to build or
install) and does the GB/T 32918.2 verification steps around one elliptic-curve computation:

* ``e = SM3(Z || M)`` with ``Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)`` (``Z`` is
  computed once per public key), ``t = (r + s) mod n``, ``(x1, y1) = s*G + t*P_A``, valid when
  ``(e + x1) mod n == r``.
* ``s*G`` uses OpenSSL's precomputed table for the generator (``EC_GROUP_precompute_mult``).
* Keys repeat (an engineer signs every fix with the same key), so a key's second verification
  builds a table for ``P_A`` as well: a private copy of the SM2 group whose generator is
  ``P_A``, precomputed once (~0.4 ms, ~80 KB). With both tables ``s*G + t*P_A`` needs a few
  doublings instead of 256: ~0.09 ms per verification instead of ~0.21 ms (measured, see
  :func:`gm.algorithms.verify_rates`). At most :data:`TABLES_MAX` keys keep a table (least
  recently used dropped), built at a bounded rate (:data:`BUILD_EVERY`); up to
  :data:`KEYS_MAX` keys keep their parsed point and ``Z``.

OpenSSL picks its wNAF multiplication, which uses the tables, only when ``EC_POINTs_mul`` is
given a point besides the generator (a lone scalar takes the constant-time ladder, meant for
secret scalars), so the table paths pass one extra point with the scalar zero. That choice
changes the speed only, never the result; the self-test below checks the results.

The functions used (``EC_GROUP_precompute_mult``, ``EC_POINTs_mul``...) are deprecated since
OpenSSL 3.0 but present in every 3.x. :func:`load` returns None when libcrypto 3 cannot be
loaded, lacks a function or fails the known-answer self-test; the caller then verifies with
gmssl_pyx. Calls keep the GIL (``ctypes.PyDLL``), like gmssl_pyx; scratch values are per thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["BUILD_BURST", "BUILD_EVERY", "KEYS_MAX", "TABLES_MAX", "OpenSslSm2", "load"]

KEYS_MAX = 4096  # parsed points and Z values kept (~0.5 KB each)
TABLES_MAX = 512  # per-key tables kept (~80 KB each)
# At most one table built per BUILD_EVERY verifications in the long run (BUILD_BURST at once):
# when more than TABLES_MAX keys take turns, tables would be evicted before they pay for
# themselves (a build costs ~4 verifications); the budget bounds that waste to ~5%.
BUILD_EVERY = 32
BUILD_BURST = 128.0

_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
_NID_SM2 = 1172  # NID_sm2 in OpenSSL 3's obj_mac.h
_VP = ctypes.c_void_p
_Points = _VP * 1

# Known answer (signed with gmssl_pyx, checked with the pure-Python gmssl): x||y, message, r||s.
_KAT_PUB = bytes.fromhex(
    "5d2ba83fbd9553b1e2be0c2331bf705e73bf1c12201e982bb85571112f15e1a4"
    "07c09a91c68fe1a99abcc89bd9e9d4f1b5cbaede909bde487a5a0b2a7837768e"
)
_KAT_MSG = b"SiteWatch SM2 known answer"
_KAT_R = 0x36B906996592C6E7932ECEB79F496451C57B899C71304F0A823462CF2D65F34F
_KAT_S = 0xD0CB8DF2BE28F61CCD886DE2824B265543792A83EFC0CAEAFE36BA76AA1E7725


def _z_prefix(user_id: bytes) -> bytes:
    curve = b"".join(v.to_bytes(32, "big") for v in (_A, _B, _GX, _GY))
    return (len(user_id) * 8).to_bytes(2, "big") + user_id + curve


class _Lib:
    """The libcrypto functions used, with their C signatures."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        def fn(name: str, restype: Any, *argtypes: Any) -> Any:
            f = getattr(lib, name)  # AttributeError when missing
            f.restype = restype
            f.argtypes = argtypes
            return f

        i, sz, cp = ctypes.c_int, ctypes.c_size_t, ctypes.c_char_p
        self.version_num = fn("OpenSSL_version_num", ctypes.c_ulong)
        self.err_clear = fn("ERR_clear_error", None)
        self.group_by_name = fn("EC_GROUP_new_by_curve_name", _VP, i)
        self.group_dup = fn("EC_GROUP_dup", _VP, _VP)
        self.group_free = fn("EC_GROUP_free", None, _VP)
        self.group_precompute = fn("EC_GROUP_precompute_mult", i, _VP, _VP)
        self.group_set_generator = fn("EC_GROUP_set_generator", i, _VP, _VP, _VP, _VP)
        self.group_order = fn("EC_GROUP_get0_order", _VP, _VP)
        self.group_cofactor = fn("EC_GROUP_get0_cofactor", _VP, _VP)
        self.group_generator = fn("EC_GROUP_get0_generator", _VP, _VP)
        self.point_new = fn("EC_POINT_new", _VP, _VP)
        self.point_free = fn("EC_POINT_free", None, _VP)
        self.point_oct2point = fn("EC_POINT_oct2point", i, _VP, _VP, cp, sz, _VP)
        self.point_mul = fn("EC_POINT_mul", i, _VP, _VP, _VP, _VP, _VP, _VP)
        self.points_mul = fn("EC_POINTs_mul", i, _VP, _VP, _VP, sz, _Points, _Points, _VP)
        self.point_add = fn("EC_POINT_add", i, _VP, _VP, _VP, _VP, _VP)
        self.point_affine = fn("EC_POINT_get_affine_coordinates", i, _VP, _VP, _VP, _VP, _VP)
        self.bn_new = fn("BN_new", _VP)
        self.bn_free = fn("BN_free", None, _VP)
        self.bn_bin2bn = fn("BN_bin2bn", _VP, cp, i, _VP)
        self.bn_bn2binpad = fn("BN_bn2binpad", i, _VP, ctypes.c_char_p, i)
        self.ctx_new = fn("BN_CTX_new", _VP)
        self.ctx_free = fn("BN_CTX_free", None, _VP)


class _Scratch:
    """One thread's BN_CTX, big numbers and points (OpenSSL objects are not shared)."""

    def __init__(self, lib: _Lib, group: int) -> None:
        self.lib = lib
        self.ctx = lib.ctx_new()
        self.s, self.t, self.x = lib.bn_new(), lib.bn_new(), lib.bn_new()
        self.r1, self.r2 = lib.point_new(group), lib.point_new(group)
        self.xbuf = ctypes.create_string_buffer(32)
        if not all((self.ctx, self.s, self.t, self.x, self.r1, self.r2)):
            raise MemoryError("OpenSSL allocation failed")

    def __del__(self) -> None:
        lib = self.lib
        for bn in (self.s, self.t, self.x):
            lib.bn_free(bn)
        lib.point_free(self.r1)
        lib.point_free(self.r2)
        lib.ctx_free(self.ctx)


class _Table:
    """A key's own copy of the SM2 group, with the key as generator, precomputed. Freed when
    the last reference goes (a thread may still be multiplying with an evicted table)."""

    __slots__ = ("lib", "group")

    def __init__(self, lib: _Lib, group: int) -> None:
        self.lib = lib
        self.group = group

    def __del__(self) -> None:
        self.lib.group_free(self.group)


class _Key:
    """A public key: its point, its Z, how often it was used and, once it repeats, a table."""

    __slots__ = ("lib", "point", "points", "z", "uses", "table")

    def __init__(self, lib: _Lib, point: int, z: bytes) -> None:
        self.lib = lib
        self.point = point
        self.points = _Points(point)
        self.z = z
        self.uses = 0
        self.table: _Table | None = None

    def __del__(self) -> None:
        self.lib.point_free(self.point)


class OpenSslSm2:
    """``verify(pub64, data, r, s)``: SM2-with-SM3 verification for one user id."""

    def __init__(self, lib: _Lib, user_id: bytes) -> None:
        self.lib = lib
        self._z_prefix = _z_prefix(user_id)
        self._plain = lib.group_by_name(_NID_SM2)  # never precomputed: copied per key
        self._group = lib.group_by_name(_NID_SM2)  # the generator precomputed
        if not self._plain or not self._group or lib.group_precompute(self._group, None) != 1:
            raise OSError("libcrypto has no usable SM2 curve")
        self._generator = _Points(lib.group_generator(self._group))
        self._zeros = _Points(lib.bn_new())  # BN_new() is zero
        self._keys: OrderedDict[bytes, _Key] = OrderedDict()
        self._tables: OrderedDict[bytes, _Key] = OrderedDict()
        self._budget = BUILD_BURST
        self._built = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def stats(self) -> dict[str, int]:
        """Keys kept, keys with a table, tables built so far."""
        return {"keys": len(self._keys), "tables": len(self._tables), "built": self._built}

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._tables.clear()
            self._budget = BUILD_BURST
            self._built = 0

    def _scratch(self) -> _Scratch:
        sc: _Scratch | None = getattr(self._local, "scratch", None)
        if sc is None:
            sc = self._local.scratch = _Scratch(self.lib, self._group)
        return sc

    def _key(self, pub64: bytes) -> _Key | None:
        with self._lock:
            self._budget = min(self._budget + 1.0 / BUILD_EVERY, BUILD_BURST)
            key = self._keys.get(pub64)
            if key is not None:
                self._keys.move_to_end(pub64)
                if key.table is not None:
                    self._tables.move_to_end(pub64)
                key.uses += 1
                return key
        lib = self.lib
        point = lib.point_new(self._group)
        if not point:
            return None
        key = _Key(lib, point, hashlib.new("sm3", self._z_prefix + pub64).digest())
        if lib.point_oct2point(self._group, point, b"\x04" + pub64, 65, None) != 1:
            lib.err_clear()  # not on the curve
            return None
        key.uses = 1
        with self._lock:
            self._keys[pub64] = key
            while len(self._keys) > KEYS_MAX:
                old_pub, _ = self._keys.popitem(last=False)
                self._tables.pop(old_pub, None)
        return key

    def _add_table(self, pub64: bytes, key: _Key) -> None:
        lib = self.lib
        group = lib.group_dup(self._plain)
        if not group:
            return
        table = _Table(lib, group)
        order, cofactor = lib.group_order(self._plain), lib.group_cofactor(self._plain)
        if (
            lib.group_set_generator(group, key.point, order, cofactor) != 1
            or lib.group_precompute(group, None) != 1
        ):
            lib.err_clear()
            return
        with self._lock:
            if key.table is not None or self._keys.get(pub64) is not key:
                return  # another thread was first, or the key was dropped meanwhile
            key.table = table
            self._tables[pub64] = key
            self._built += 1
            while len(self._tables) > TABLES_MAX:
                _, old = self._tables.popitem(last=False)
                old.table = None
                old.uses = 0

    def verify(self, pub64: bytes, data: bytes, r: int, s: int) -> bool:
        """``r`` and ``s`` must already be in ``[1, n-1]``; ``pub64`` is ``x||y``."""
        t = (r + s) % _N
        if t == 0:
            return False
        key = self._key(pub64)
        if key is None:
            return False
        if key.table is None and key.uses >= 2 and self._budget >= 1.0:
            self._budget -= 1.0
            self._add_table(pub64, key)
        table = key.table
        lib, sc, group = self.lib, self._scratch(), self._group
        lib.bn_bin2bn(s.to_bytes(32, "big"), 32, sc.s)
        lib.bn_bin2bn(t.to_bytes(32, "big"), 32, sc.t)
        if table is None:
            ok = lib.point_mul(group, sc.r1, sc.s, key.point, sc.t, sc.ctx) == 1
        else:
            ok = (
                lib.points_mul(group, sc.r1, sc.s, 1, self._generator, self._zeros, sc.ctx) == 1
                and lib.points_mul(table.group, sc.r2, sc.t, 1, key.points, self._zeros, sc.ctx)
                == 1
                and lib.point_add(group, sc.r1, sc.r1, sc.r2, sc.ctx) == 1
            )
        # the point at infinity has no affine coordinates: invalid
        if not ok or lib.point_affine(group, sc.r1, sc.x, None, sc.ctx) != 1:
            lib.err_clear()
            return False
        lib.bn_bn2binpad(sc.x, sc.xbuf, 32)
        e = int.from_bytes(hashlib.new("sm3", key.z + data).digest(), "big")
        return (e + int.from_bytes(sc.xbuf.raw, "big")) % _N == r


def _self_test(v: OpenSslSm2) -> bool:
    """The known answer passes and a changed message, r or s fails, on both paths."""
    try:
        answers = [v.verify(_KAT_PUB, _KAT_MSG, _KAT_R, _KAT_S) for _ in range(3)]
        answers += [
            not v.verify(_KAT_PUB, _KAT_MSG + b".", _KAT_R, _KAT_S),
            not v.verify(_KAT_PUB, _KAT_MSG, _KAT_R ^ 1, _KAT_S),
            not v.verify(_KAT_PUB, _KAT_MSG, _KAT_R, _KAT_S ^ 1),
        ]
        return all(answers) and v.stats() == {"keys": 1, "tables": 1, "built": 1}
    finally:
        v.clear()


def load(user_id: bytes) -> OpenSslSm2 | None:
    """A verifier on libcrypto 3, or None (no libcrypto 3, no SM2 or SM3 in it, a function
    missing, or the self-test failed)."""
    try:
        lib = _Lib(_open_libcrypto())
        if lib.version_num() < 0x30000000:
            return None
        verifier = OpenSslSm2(lib, user_id)
        return verifier if _self_test(verifier) else None
    except (OSError, AttributeError, ValueError, MemoryError):
        return None


def _open_libcrypto() -> ctypes.CDLL:
    errors: list[str] = []
    names = ["libcrypto.so.3"]
    found = ctypes.util.find_library("crypto")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.PyDLL(name)
        except OSError as exc:
            errors.append(str(exc))
    raise OSError("; ".join(errors) or "libcrypto not found")
