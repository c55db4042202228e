"""The evidence chain as pure computation: the link formula, event order, idempotence,
determinism under any batching, sealing of late records, and verification that names the
first broken entry."""

from __future__ import annotations

import dataclasses
import json
import random

import gmssl.sm3
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import Settings
from rules.evidence_chain import (
    Candidate,
    Entry,
    Head,
    applied,
    build_chain,
    candidates,
    genesis_hash,
    link,
    may_have_tail,
    plan,
    stage,
)
from rules.evidence_verify import ChainVerifier, StoredFact, VerifyRow, decode_canonical
from wire.codecs import decode_mqtt, decode_osmand
from wire.owntracks import decode_owntracks_obj
from wire.records import Fix

ENG = "EV-UNIT-1"
L = 3600.0
T0 = 1_760_000_000.0


def independent_sm3(data: bytes) -> str:
    return str(gmssl.sm3.sm3_hash(list(data)))


def checkin(i: int, ts: float, lon: float = 113.93, lat: float = 22.53) -> Candidate:
    body = {"msg_id": f"m{i}", "engineer_id": ENG, "ts": ts, "lat": lat, "lon": lon, "acc": 5}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return Candidate(ENG, "fix", f"m{i}", ts, raw)


def fact_for(c: Candidate) -> StoredFact:
    body = json.loads(c.canonical)
    return StoredFact(ts=c.ts, lon=body["lon"], lat=body["lat"], source="checkin")


def rows(chain: list[Entry], facts: dict[str, StoredFact] | None = None) -> list[VerifyRow]:
    """Entries with their fact rows (by default the facts their bytes say)."""
    if facts is None:
        facts = {
            e.msg_id: fact_for(Candidate(ENG, e.kind, e.msg_id, e.ts, e.canonical)) for e in chain
        }
    return [VerifyRow(e, facts.get(e.msg_id)) for e in chain]


def verifies(chain: list[Entry]) -> bool:
    v = ChainVerifier(ENG)
    v.feed(rows(chain))
    return v.result(Head(ENG, len(chain), chain[-1].hash, None)).ok


def event_order(cands: list[Candidate]) -> list[str]:
    return [c.msg_id for c in sorted(cands, key=lambda c: (c.ts, c.msg_id, c.kind))]


# --------------------------------------------------------------------------- formula


def test_genesis_and_link_follow_the_documented_formula() -> None:
    assert genesis_hash(ENG) == independent_sm3(ENG.encode("utf-8"))
    prev = genesis_hash(ENG)
    data = b'{"a":1}'
    assert link(prev, data) == independent_sm3(bytes.fromhex(prev) + data)


def test_chain_in_order_is_the_formula_applied_entry_by_entry() -> None:
    cands = [checkin(i, T0 + 10 * i) for i in range(5)]
    chain = build_chain(ENG, [cands], lateness_s=L)
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    prev = genesis_hash(ENG)
    for e, c in zip(chain, cands, strict=True):
        assert e.prev_hash == prev
        assert e.hash == independent_sm3(bytes.fromhex(prev) + c.canonical)
        assert not e.late
        prev = e.hash


# --------------------------------------------------------------------------- order


def test_out_of_order_arrival_within_lateness_is_chained_in_event_order() -> None:
    cands = [checkin(i, T0 + 60 * i) for i in range(6)]
    arrival = [cands[0], cands[3], cands[1], cands[5], cands[2], cands[4]]
    chain = build_chain(ENG, [[c] for c in arrival], lateness_s=L)
    assert [e.msg_id for e in chain] == event_order(cands)
    assert chain == build_chain(ENG, [cands], lateness_s=L)


def test_insertion_relinks_only_entries_after_it() -> None:
    cands = [checkin(i, T0 + 60 * i) for i in range(5)]
    first = build_chain(ENG, [cands[:2] + cands[3:]], lateness_s=L)
    head = Head(ENG, len(first), first[-1].hash, max(c.ts for c in cands))
    upd = plan(head, first[1:], [cands[2]], lateness_s=L)
    assert upd.delete_from_seq == 3
    assert [e.seq for e in upd.rows] == [3, 4, 5]
    assert upd.rows[0].prev_hash == first[1].hash
    assert upd.head is not None and upd.head.entries == 5


def test_a_record_later_than_the_lateness_is_chained_at_the_horizon_sealed_entries_unchanged() -> (
    None
):
    early = [checkin(i, T0 + 600 * i) for i in range(10)]  # watermark T0 + 5400
    chain = build_chain(ENG, [early], lateness_s=L)
    late = checkin(99, T0 + 100)  # 5300 s behind the watermark
    after = build_chain(ENG, [early, [late]], lateness_s=L)
    horizon = T0 + 5400 - L
    entry = next(e for e in after if e.msg_id == "m99")
    assert entry.late and entry.ts == late.ts and entry.order_ts == horizon
    sealed = [e for e in chain if e.order_ts < horizon]
    assert sealed and after[: len(sealed)] == sealed  # hashes before the horizon are final
    assert verifies(after)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 20_000), min_size=1, max_size=25, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_batching_and_redelivery_of_one_arrival_sequence_gives_the_same_chain(
    offsets: list[int], seed: int
) -> None:
    rnd = random.Random(seed)
    cands = [checkin(i, T0 + o) for i, o in enumerate(offsets)]
    rnd.shuffle(cands)  # the arrival order (one Kafka partition)
    reference = build_chain(ENG, [cands], lateness_s=L)
    # cut the same sequence into batches, and redeliver random prefixes (at-least-once)
    batches: list[list[Candidate]] = []
    i = 0
    while i < len(cands):
        j = rnd.randint(i + 1, len(cands))
        batches.append(cands[i:j])
        if rnd.random() < 0.3:
            batches.append(cands[rnd.randint(0, i) : j])  # a redelivery
        i = j
    assert build_chain(ENG, batches, lateness_s=L) == reference
    assert verifies(reference)


@settings(max_examples=300, deadline=None)
@given(
    # not unique: a record at its chain's newest time has its order_ts at the watermark
    offsets=st.lists(st.integers(0, 8_000), min_size=1, max_size=25),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_chain_said_to_have_no_tail_has_no_entry_at_or_after_the_new_records(
    offsets: list[int], seed: int
) -> None:
    """store.evidence skips reading the tail when `may_have_tail` says no: the chain must
    then hold no entry the merge needs, and the chain built so equals the one built with
    every tail read."""
    rnd = random.Random(seed)
    cands = [checkin(i, T0 + o) for i, o in enumerate(offsets)]
    rnd.shuffle(cands)
    head, chain, skipped = Head.empty(ENG), [], 0
    i = 0
    while i < len(cands):
        j = rnd.randint(i + 1, len(cands))
        batch, i = cands[i:j], j
        staged, _ = stage(head, batch, lateness_s=L)
        first = min(s.order_ts for s in staged)
        needed = [e for e in chain if e.order_ts >= first]
        if not may_have_tail(head, first):
            assert needed == []
            skipped += 1
        chain, head = applied(chain, plan(head, needed, batch, lateness_s=L))
    assert skipped >= 1  # the first batch, on an empty chain
    assert chain == build_chain(ENG, [cands], lateness_s=L)


def test_a_negative_lateness_is_refused_at_start() -> None:
    """`may_have_tail` relies on order_ts <= watermark, which a negative lateness breaks."""
    with pytest.raises(pydantic.ValidationError, match="allowed_lateness_s"):
        Settings(allowed_lateness_s=-10)
    assert Settings(allowed_lateness_s=0).allowed_lateness_s == 0


def test_a_record_at_the_watermark_needs_the_tail() -> None:
    first = checkin(1, T0)
    update = plan(Head.empty(ENG), [], [first], lateness_s=L)
    assert update.head is not None and update.head.watermark == T0
    assert may_have_tail(update.head, T0)  # a second record at the same time sorts by msg_id
    assert not may_have_tail(update.head, T0 + 0.001)
    assert not may_have_tail(Head.empty(ENG), T0)


@settings(max_examples=200, deadline=None)
@given(offsets=st.lists(st.integers(0, 3000), min_size=1, max_size=25, unique=True))
def test_when_nothing_is_too_late_the_chain_is_in_event_order_whatever_the_arrival(
    offsets: list[int],
) -> None:
    cands = [checkin(i, T0 + o) for i, o in enumerate(offsets)]  # all within the lateness
    shuffled = list(reversed(cands))
    chain = build_chain(ENG, [[c] for c in shuffled], lateness_s=L)
    assert [e.msg_id for e in chain] == event_order(cands)
    assert not any(e.late for e in chain)
    assert chain == build_chain(ENG, [sorted(cands, key=lambda c: c.ts)], lateness_s=L)


def test_candidates_take_fixes_and_logs_once() -> None:
    fix = Fix("a", ENG, T0, 113.0, 22.0, 5.0, "position", "checkin", canonical=b"{}")
    log = decode_mqtt(
        f"sitewatch/logs/{ENG}",
        json.dumps(
            {"msg_id": "a", "project_id": "P", "ts": T0, "lat": 22, "lon": 113, "text": "ok"}
        ).encode(),
        now=T0 + 10,
    )
    got = candidates([fix, log, fix])
    assert [(c.kind, c.msg_id) for c in got] == [("fix", "a"), ("log", "a")]


# --------------------------------------------------------------------------- verification


@pytest.fixture()
def intact() -> tuple[list[Entry], dict[str, StoredFact], Head]:
    cands = [checkin(i, T0 + 30 * i, lon=113.93 + i * 1e-4) for i in range(6)]
    chain = build_chain(ENG, [cands], lateness_s=L)
    facts = {c.msg_id: fact_for(c) for c in cands}
    return chain, facts, Head(ENG, len(chain), chain[-1].hash, T0 + 150)


def check(chain: list[Entry], facts: dict[str, StoredFact], head: Head, **kw: float) -> dict:
    v = ChainVerifier(ENG, **kw)
    v.feed(rows(chain, facts))
    return v.result(head, len(chain)).as_dict()


def test_intact_chain_verifies(intact: tuple) -> None:
    result = check(*intact)
    assert result["ok"] and result["entries"] == 6 and "broken_at" not in result


def test_changed_canonical_byte_is_named(intact: tuple) -> None:
    chain, facts, head = intact
    e = chain[2]
    raw = bytearray(e.canonical)
    raw[raw.index(b"113")] = ord("4")  # 113.93... -> 413.93... in the stored bytes
    chain[2] = e._replace(canonical=bytes(raw))
    result = check(chain, facts, head)
    assert not result["ok"] and result["broken_at"] == 3
    assert result["broken"]["reason"] == "hash_mismatch" and result["broken"]["msg_id"] == "m2"


def test_changed_fact_coordinate_is_named(intact: tuple) -> None:
    chain, facts, head = intact
    facts["m4"] = dataclasses.replace(facts["m4"], lat=facts["m4"].lat + 0.001)
    result = check(chain, facts, head)
    assert result["broken_at"] == 5 and result["broken"]["reason"] == "fact_mismatch"


def test_changed_fact_time_is_named(intact: tuple) -> None:
    chain, facts, head = intact
    facts["m1"] = dataclasses.replace(facts["m1"], ts=facts["m1"].ts - 3600)
    result = check(chain, facts, head)
    assert result["broken_at"] == 2 and result["broken"]["reason"] == "fact_mismatch"


def test_swapped_seq_numbers_are_named(intact: tuple) -> None:
    chain, facts, head = intact
    a, b = chain[3], chain[4]
    swapped = chain[:3] + [b._replace(seq=4), a._replace(seq=5)]
    swapped += chain[5:]
    result = check(swapped, facts, head)
    assert result["broken_at"] == 4 and result["broken"]["reason"] == "prev_mismatch"


def test_relinked_reordering_is_caught_by_event_order(intact: tuple) -> None:
    """Even an attacker who re-computes every hash after swapping two entries is caught:
    the chain is no longer in event order."""
    chain, facts, _head = intact
    order = [chain[0], chain[2], chain[1], *chain[3:]]
    prev, relinked = genesis_hash(ENG), []
    for i, e in enumerate(order, 1):
        h = link(prev, e.canonical)
        relinked.append(e._replace(seq=i, prev_hash=prev, hash=h))
        prev = h
    result = check(relinked, facts, Head(ENG, len(relinked), prev, None))
    assert result["broken_at"] == 3 and result["broken"]["reason"] == "out_of_order"


def test_removed_entry_and_truncation_are_named(intact: tuple) -> None:
    chain, facts, head = intact
    gap = check(chain[:2] + chain[3:], facts, head)
    assert gap["broken_at"] == 3 and gap["broken"]["reason"] == "seq_gap"
    cut = check(chain[:4], facts, head)
    assert cut["broken_at"] == 5 and cut["broken"]["reason"] == "head_mismatch"


def test_missing_fact_is_broken_unless_trimmed_by_retention(intact: tuple) -> None:
    chain, facts, head = intact
    del facts["m0"]
    assert check(chain, facts, head)["broken"]["reason"] == "fact_missing"
    assert check(chain, facts, head, facts_required_after=T0 + 1)["ok"]


# --------------------------------------------------------------------------- decoding


def test_decode_canonical_matches_every_accepting_codec() -> None:
    now = T0 + 10
    ck = decode_mqtt(
        f"sitewatch/checkin/{ENG}",
        json.dumps(
            {
                "msg_id": "c1",
                "engineer_id": ENG,
                "ts": T0,
                "lat": 22.5,
                "lon": 113.9,
                "crs": "gcj02",
            }
        ).encode(),
        now=now,
    )
    ot = decode_owntracks_obj(
        {"_type": "location", "lat": 22.5, "lon": 113.9, "tst": int(T0)},
        ENG,
        "phone:1",
        source="owntracks",
        now=now,
    )
    params = {"id": ENG, "lat": "22.5", "lon": "113.9", "timestamp": str(int(T0))}
    os1 = decode_osmand(params, None, None, now=now)
    untimed = {"id": ENG, "lat": "22.5", "lon": "113.9"}
    os2 = decode_osmand(untimed, None, None, now=now)
    body = {
        "device_id": ENG,
        "location": {
            "timestamp": "2025-10-09T08:53:20Z",
            "coords": {"latitude": 22.5, "longitude": 113.9},
        },
    }
    os3 = decode_osmand({}, json.dumps(body).encode(), "application/json", now=now)
    for rec in (ck, ot, os1, os2, os3):
        assert isinstance(rec, Fix)
        d = decode_canonical(ENG, "fix", rec.msg_id, rec.canonical, rec.source, rec.ts)
        assert d is not None, rec
        assert (d.msg_id, d.lon, d.lat) == (rec.msg_id, rec.lon, rec.lat)
        assert d.ts == (None if rec is os2 else rec.ts)
    assert ck.crs == "gcj02" and ck.lon != 113.9  # converted, and decoding converts again


def test_decode_canonical_of_garbage_is_none() -> None:
    assert decode_canonical(ENG, "fix", "m", b"{not json", "checkin", T0) is None
    assert decode_canonical(ENG, "fix", "m", b"{}", "unknown-source", T0) is None
