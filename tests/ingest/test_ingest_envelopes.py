"""Envelopes: the gate packs the accepted records of one partition into JSON arrays, the
worker unpacks them with the record, its Kafka event and the gate's arrival time."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ingest import gate
from streams.worker import decode_events
from wire.records import Fix, Telemetry, to_json


def fix(i: int, engineer: str = "E1") -> Fix:
    return Fix(f"m{i}", engineer, 1_700_000_000.0 + i, 113.9, 22.5, 5.0, "position", "checkin")


def event(value: bytes, partition: int = 0) -> SimpleNamespace:
    return SimpleNamespace(value=value, message=SimpleNamespace(tp=("fixes.v1", partition)))


def test_a_single_record_stays_a_bare_object() -> None:
    value = to_json(fix(1), received_at=5.0)
    assert gate.envelopes([value]) == [value]


@given(st.integers(min_value=2, max_value=1200), st.integers(min_value=1, max_value=600))
def test_envelopes_keep_every_record_in_order_within_the_limits(n: int, pad: int) -> None:
    values = [orjson.dumps({"msg_id": f"m{i}", "pad": "x" * pad}) for i in range(n)]
    packed = gate.envelopes(values)
    unpacked = [orjson.dumps(d) for env in packed for d in orjson.loads(env)]
    assert unpacked == values
    for env in packed:
        assert len(orjson.loads(env)) <= gate.ENVELOPE_RECORDS
        assert len(env) <= gate.ENVELOPE_BYTES + 2  # the brackets


def test_decode_reads_envelopes_and_bare_records_alike() -> None:
    envelope = gate.envelopes([to_json(fix(i), received_at=100.0 + i) for i in range(3)])
    assert len(envelope) == 1
    bare = to_json(fix(3, "E2"), received_at=200.0)
    events = [event(envelope[0]), event(bare, 1)]
    decoded = decode_events(events, (Fix,))
    assert [r.msg_id for r in decoded.records] == ["m0", "m1", "m2", "m3"]  # type: ignore[union-attr]
    assert decoded.events == [events[0]] * 3 + [events[1]]
    assert decoded.received == [100.0, 101.0, 102.0, 200.0]


def test_decode_skips_bad_members_and_other_kinds_but_keeps_the_rest() -> None:
    reading = Telemetry("t1", "D1", 1_700_000_000.0, {"tilt": 1.0}, None, None, b"{}")
    value = (
        b"[" + b",".join([to_json(fix(1)), b'{"record": "nope"}', b"7", to_json(reading)]) + b"]"
    )
    decoded = decode_events([event(value), event(b"not json")], (Fix,))
    assert [r.msg_id for r in decoded.records] == ["m1"]  # type: ignore[union-attr]
    assert decoded.received == [None]


def test_live_messages_of_a_big_batch_stay_under_the_kafka_request_limit() -> None:
    """A batch of 20,000 fixes once produced one 1.2 MB live record: Faust stopped the
    worker with MessageSizeTooLargeError. Every live value must stay well under 1 MiB."""
    from streams.worker import live_values

    events = [
        {"type": "position", "engineer_id": f"E{i:05d}", "msg_id": f"m{i}" * 8, "lon": 113.9}
        for i in range(20_000)
    ]
    values = live_values(events)
    assert all(len(v) < 512 * 1024 for v in values)
    assert [e for v in values for e in orjson.loads(v)] == events
    assert live_values([]) == []
