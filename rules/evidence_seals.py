"""Seals of the evidence chains: pure computation, no I/O (store.seals writes and reads them).

A chain alone holds against anyone who cannot rewrite it consistently; the database's own
administrator can (recompute every hash after an altered entry, update the head). A seal is a
statement signed with an SM2 key that the database never holds, kept outside the database::

    {"sealed_at": <epoch s>, "public_key": <hex x||y>,
     "heads": [[engineer_id, seq, hash], ...], "sig": <hex DER SM2-with-SM3>}

``sig`` covers the canonical JSON of the rest (gm.algorithms.canonical_bytes). A sealed
``(engineer_id, seq, hash)`` says: entry ``seq`` of that chain hashed to ``hash``. Only final
entries are sealed: those ordered before the engineer's horizon (watermark minus the allowed
lateness, rules.evidence_chain), whose hashes no late record can change any more.

Verification: the chain recomputed from its genesis must still hash to every sealed value.
Because each hash covers everything before it, the first sealed entry that no longer matches
bounds the rewrite: it lies after the last sealed entry that still matches, up to that one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gm.algorithms import canonical_bytes, sign_sm2, verify_sm2


class SealError(ValueError):
    """A seal that is malformed, or signed by another key, or not signed at all."""


@dataclass(frozen=True, slots=True)
class SealedHead:
    engineer_id: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Seal:
    sealed_at: float
    heads: tuple[SealedHead, ...]
    public_key: str


def _body(sealed_at: float, heads: Iterable[SealedHead], public_key: str) -> dict[str, Any]:
    return {
        "sealed_at": sealed_at,
        "public_key": public_key,
        "heads": [[h.engineer_id, h.seq, h.hash] for h in heads],
    }


def make_seal(
    private_key_hex: str, public_key_hex: str, sealed_at: float, heads: Sequence[SealedHead]
) -> dict[str, Any]:
    """The seal as a JSON-ready object, signed."""
    body = _body(sealed_at, heads, public_key_hex)
    sig = sign_sm2(private_key_hex, canonical_bytes(body), public_key_hex=public_key_hex)
    return {**body, "sig": sig}


def read_seal(obj: Any, trusted_public_key: str) -> Seal:
    """The seal of a parsed file, once its form and its signature by the trusted key hold."""
    if not isinstance(obj, Mapping):
        raise SealError("not a JSON object")
    sealed_at, public_key, heads, sig = (
        obj.get("sealed_at"),
        obj.get("public_key"),
        obj.get("heads"),
        obj.get("sig"),
    )
    if not isinstance(sealed_at, int | float) or isinstance(sealed_at, bool):
        raise SealError("sealed_at is not a number")
    if not isinstance(heads, list) or not isinstance(sig, str):
        raise SealError("heads or sig missing")
    if public_key != trusted_public_key:
        raise SealError("signed by another key than the trusted one")
    parsed = []
    for item in heads:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and isinstance(item[2], str)
        ):
            raise SealError(f"malformed head {item!r:.80}")
        parsed.append(SealedHead(item[0], item[1], item[2]))
    if not verify_sm2(
        trusted_public_key, canonical_bytes(_body(sealed_at, parsed, public_key)), sig
    ):
        raise SealError("the signature does not verify (the seal was altered)")
    return Seal(float(sealed_at), tuple(parsed), public_key)


@dataclass(frozen=True, slots=True)
class SealCheck:
    """The chain of one engineer against every seal that names it."""

    sealed: int  # sealed entries checked
    ok: bool
    seq: int | None = None  # the first sealed entry that no longer matches
    sealed_at: float | None = None  # when it was sealed
    after_seq: int = 0  # the last sealed entry that still matches (0: none)
    message: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"sealed_entries": self.sealed, "ok": self.ok}
        if not self.ok:
            out |= {"seq": self.seq, "sealed_at": self.sealed_at, "message": self.message}
        return out


def sealed_points(engineer_id: str, seals: Iterable[Seal]) -> dict[int, tuple[str, float]]:
    """Every sealed ``seq -> (hash, sealed_at)`` of one engineer (the earliest seal of a seq)."""
    points: dict[int, tuple[str, float]] = {}
    for seal in sorted(seals, key=lambda s: s.sealed_at):
        for head in seal.heads:
            if head.engineer_id == engineer_id and head.seq not in points:
                points[head.seq] = (head.hash, seal.sealed_at)
    return points


def check_chain(
    points: Mapping[int, tuple[str, float]], recomputed: Mapping[int, str], entries: int
) -> SealCheck:
    """``points``: sealed_points; ``recomputed``: the hash the verified chain gives at each
    sealed seq (absent: the chain is shorter); ``entries``: how many entries verified."""
    after = 0
    for seq in sorted(points):
        sealed_hash, sealed_at = points[seq]
        now = recomputed.get(seq)
        if now == sealed_hash:
            after = seq
            continue
        if seq > entries:
            why = f"entry {seq} was sealed but the chain now has only {entries} verified entries"
        else:
            why = f"entry {seq} hashes to {str(now)[:16]}..., sealed as {sealed_hash[:16]}..."
        return SealCheck(
            len(points),
            False,
            seq,
            sealed_at,
            after,
            f"{why}: rewritten after it was sealed, somewhere in entries {after + 1}..{seq}",
        )
    return SealCheck(len(points), True, after_seq=after)


__all__ = [
    "Seal",
    "SealCheck",
    "SealError",
    "SealedHead",
    "check_chain",
    "make_seal",
    "read_seal",
    "sealed_points",
]
