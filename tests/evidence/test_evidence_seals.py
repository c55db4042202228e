"""Seals of the evidence chains without a stack (rules.evidence_seals): signed statements of
final chain heads that only the seal key can make, and the check that bounds a rewrite."""

from __future__ import annotations

import copy

import pytest

from gm.algorithms import generate_sm2_keypair
from rules.evidence_seals import (
    SealedHead,
    SealError,
    check_chain,
    make_seal,
    read_seal,
    sealed_points,
)

PRIVATE, PUBLIC = generate_sm2_keypair()
HEADS = [SealedHead("E-1", 3, "a" * 64), SealedHead("E-2", 10, "b" * 64)]


def test_a_seal_reads_back_with_its_key() -> None:
    seal = read_seal(make_seal(PRIVATE, PUBLIC, 1_700_000_000.5, HEADS), PUBLIC)
    assert seal.heads == tuple(HEADS) and seal.sealed_at == 1_700_000_000.5


@pytest.mark.parametrize(
    "alter",
    [
        lambda s: s["heads"][0].__setitem__(2, "c" * 64),  # a sealed hash rewritten
        lambda s: s["heads"].pop(),  # a head dropped
        lambda s: s.__setitem__("sealed_at", s["sealed_at"] + 1),  # moved in time
        lambda s: s.__setitem__("sig", s["sig"][:-2] + "00"),
        lambda s: s.pop("sig"),
        lambda s: s["heads"].__setitem__(0, ["E-1", "3", "a" * 64]),  # seq not a number
    ],
)
def test_an_altered_seal_is_refused(alter: object) -> None:
    seal = make_seal(PRIVATE, PUBLIC, 1_700_000_000.0, HEADS)
    forged = copy.deepcopy(seal)
    alter(forged)  # type: ignore[operator]
    with pytest.raises(SealError):
        read_seal(forged, PUBLIC)


def test_a_seal_made_with_another_key_is_refused_even_when_it_names_that_key() -> None:
    other_private, other_public = generate_sm2_keypair()
    seal = make_seal(other_private, other_public, 1_700_000_000.0, HEADS)
    with pytest.raises(SealError, match="another key"):
        read_seal(seal, PUBLIC)
    seal["public_key"] = PUBLIC  # claims the trusted key, signed with another
    with pytest.raises(SealError, match="signature"):
        read_seal(seal, PUBLIC)


def _seals() -> list[object]:
    first = make_seal(PRIVATE, PUBLIC, 100.0, [SealedHead("E-1", 3, "h3")])
    second = make_seal(PRIVATE, PUBLIC, 200.0, [SealedHead("E-1", 7, "h7")])
    return [read_seal(s, PUBLIC) for s in (first, second)]


def test_the_first_sealed_entry_that_no_longer_matches_bounds_the_rewrite() -> None:
    points = sealed_points("E-1", _seals())  # type: ignore[arg-type]
    assert points == {3: ("h3", 100.0), 7: ("h7", 200.0)}
    assert check_chain(points, {3: "h3", 7: "h7"}, entries=9).ok
    rewritten = check_chain(points, {3: "h3", 7: "x7"}, entries=9)
    assert (rewritten.ok, rewritten.seq, rewritten.after_seq) == (False, 7, 3)
    assert rewritten.sealed_at == 200.0 and "entries 4..7" in str(rewritten.message)
    early = check_chain(points, {3: "x3", 7: "x7"}, entries=9)
    assert (early.seq, early.after_seq) == (3, 0) and "entries 1..3" in str(early.message)
    shortened = check_chain(points, {3: "h3"}, entries=5)
    assert (shortened.ok, shortened.seq) == (False, 7)
    assert "only 5" in str(shortened.message)
    assert sealed_points("E-2", _seals()) == {}  # type: ignore[arg-type]
