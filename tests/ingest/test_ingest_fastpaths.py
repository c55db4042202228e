"""The hot-path shortcuts agree with the straightforward code they replace: orjson canonical
bytes vs json.dumps, to_json vs to_dict, the raw PUBLISH parser vs paho's, the scalar
coordinate path vs the vectorised one, the cached partitioner vs aiokafka's, and the bridge's
batch bookkeeping (replays, dead-letter ids)."""

from __future__ import annotations

import asyncio
import json
import math
import struct
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet as paho_packet
from paho.mqtt.enums import MQTTProtocolVersion

from geofence import coords
from gm.algorithms import _json_canonical, canonical_bytes, generate_sm2_keypair, sign_sm2
from ingest.gate import Incoming, Partitions, SeenCache, rejection_id, rejection_record
from ingest.mqtt_async import AsyncMqttClient
from ingest.sm2pool import INLINE_MAX, Sm2Pool
from measure.mqtt_publishers import _read_packets, encode_connect, encode_publish
from rules.verify import EngineerIdentity, check_many, sm2_work
from wire.records import (
    Fix,
    OwnTracksEvent,
    Reason,
    Rejected,
    SupervisionLog,
    Telemetry,
    from_dict,
    to_dict,
    to_json,
)

# --- canonical bytes ------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.text(),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=800)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_canonical_fast_path_is_json_dumps(obj: dict[str, Any]) -> None:
    body = {k: v for k, v in obj.items() if k not in ("sig", "mac")}
    try:
        expected = _json_canonical(body)
    except ValueError:
        with pytest.raises(ValueError):
            canonical_bytes(obj)
        return
    assert canonical_bytes(obj) == expected


@pytest.mark.parametrize(
    "value", [1e-5, -2.5e-7, 5e-324, 1e16, 1e300, 0.0, -0.0, 1e-4, 2**63, 2**64, -(2**63) - 1]
)
def test_canonical_edge_numbers(value: float) -> None:
    obj = {"v": value, "w": [value], "sig": "x"}
    assert (
        canonical_bytes(obj)
        == json.dumps(
            {"v": value, "w": [value]}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    )


def test_canonical_refuses_what_json_refuses() -> None:
    for bad in ({"a": math.nan}, {"a": [math.inf]}, {"a": "\ud800"}):
        with pytest.raises(ValueError):
            canonical_bytes(bad)


# --- records to Kafka JSON ------------------------------------------------------------------

RECORDS = [
    Fix("m1", "E1", 1.7e9, 114.0, 22.5, 5.0, "checkin", "checkin", canonical=b"{}", sig="ab"),
    Fix("m2", "E1", 1.7e9, 114.0, 22.5, None, "position", "osmand", 3.6, 50.0, "gcj02", b"x\x00"),
    Telemetry("t1", "D1", 1.7e9, {"pm25": 1.5, "噪声": 60.0}, None, None, b"{}", "00" * 32),
    SupervisionLog("l1", "E1", "P1", 1.7e9, 114.0, 22.5, "巡查 ok", b"{}", None, "bd09"),
    OwnTracksEvent("o1", "E1", 1.7e9, "transition", {"event": "enter", "n": [1, {"a": None}]}),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_to_json_is_to_dict(record: Any) -> None:
    fast = orjson.loads(to_json(record, received_at=1.5))
    assert fast == {**to_dict(record), "received_at": 1.5}
    assert from_dict(fast) == record


# --- MQTT -------------------------------------------------------------------------------------


def _publish_body(
    topic: bytes, mid: int, qos: int, props: bytes | None, payload: bytes
) -> bytearray:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if props is not None:
        body += props
    return bytearray(body + payload)


_LOOP = asyncio.new_event_loop()  # never run: the probe only parses


@pytest.fixture(scope="module", autouse=True)
def _close_loop() -> Any:
    yield
    _LOOP.close()


class _Probe(AsyncMqttClient):
    def __init__(self, protocol: int) -> None:
        super().__init__(_LOOP, protocol=protocol)
        self.got: list[tuple[int, int, bool, bytes, bytes]] = []
        self.on_publish_raw = lambda *a: self.got.append(a)
        self._manual_ack = True

    def feed(self, header: int, body: bytearray) -> None:
        self._in_packet = {**self._in_packet, "command": header, "packet": body}
        self._handle_publish()


@given(
    topic=st.text(min_size=1, max_size=40).map(str.encode),
    payload=st.binary(max_size=300),
    mid=st.integers(1, 65535),
    qos=st.sampled_from([0, 1]),
    dup=st.booleans(),
    props=st.sampled_from([b"\x00", b"\x02\x01\x01", b"\x05\x23\x00\x07\x01\x00"]),
)
def test_raw_publish_matches_paho(
    topic: bytes, payload: bytes, mid: int, qos: int, dup: bool, props: bytes
) -> None:
    header = 0x30 | (qos << 1) | (0x08 if dup else 0)
    for protocol, p in ((MQTTProtocolVersion.MQTTv5, props), (MQTTProtocolVersion.MQTTv311, None)):
        body = _publish_body(topic, mid, qos, p, payload)
        ref = paho_packet.decode_publish(header, bytes(body), protocol)
        probe = _Probe(int(protocol))
        probe.feed(header, body)
        assert probe.got == [(ref.mid, ref.qos, ref.dup, ref.topic, ref.payload)]


def test_loadgen_packets_parse_back() -> None:
    data = (
        encode_connect("c", "u", "p") + encode_publish("a/b", b"x" * 300, 7) + b"\x40\x02\x00\x07"
    )
    packets, used = _read_packets(bytearray(data + b"\x40"))
    assert used == len(data) and [p[0] for p in packets] == [0x10, 0x32, 0x40]
    assert packets[1][1].endswith(b"x" * 300)


# --- coordinates ------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.floats(60, 150), st.floats(-5, 60), st.sampled_from(["gcj02", "bd09", "wgs84"]))
def test_scalar_coordinates_match_vectorised(lon: float, lat: float, crs: str) -> None:
    x, y = coords.to_wgs84(lon, lat, crs)
    ax, ay = coords.to_wgs84(np.array([lon]), np.array([lat]), crs)
    assert type(x) is float and type(y) is float
    assert (x, y) == pytest.approx((float(ax[0]), float(ay[0])), abs=1e-11)
    fx, fy = coords.wgs84_to_gcj02(lon, lat)
    vx, vy = coords.wgs84_to_gcj02(np.array([lon]), np.array([lat]))
    assert (fx, fy) == pytest.approx((float(vx[0]), float(vy[0])), abs=1e-11)


def test_scalar_coordinates_nan() -> None:
    x, y = coords.to_wgs84(math.nan, 30.0, "gcj02")
    assert math.isnan(x) and math.isnan(y)


# --- gate bookkeeping -------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=64))
def test_partitions_match_aiokafka(key: str) -> None:
    p = Partitions()
    p._parts["t"] = list(range(8))  # noqa: SLF001 - no broker here
    assert p.of("t", key.encode()) == DefaultPartitioner()(
        key.encode(), list(range(8)), list(range(8))
    )


def _incoming(msg_id: str, *, dup: bool = False) -> Incoming:
    fix = Fix(msg_id, "E1", 1.7e9, 114.0, 22.5, None, "position", "checkin")
    return Incoming("mqtt", "sitewatch/checkin/E1", b"{}", 1.0, fix, 1, dup)


def test_replays_in_batch_cache_and_database() -> None:
    from ingest.gate import Gate

    gate = Gate.__new__(Gate)
    gate.seen = SeenCache(10)
    gate.seen.add(("E1", "cached"))
    items = [_incoming(m) for m in ("a", "a", "cached", "in-db", "b")]
    verdicts: list[Rejected | None] = [None] * len(items)
    accepted = gate.replays(items, verdicts, {("E1", "in-db")})
    assert accepted == [("E1", "a"), ("E1", "b")]
    assert [v.reason if v else None for v in verdicts] == [None, "replay", "replay", "replay", None]
    again: list[Rejected | None] = [None]
    assert gate.replays([_incoming("b")], again, set()) == [] and again[0] is not None


def test_seen_cache_is_bounded() -> None:
    cache = SeenCache(3)
    for k in range(5):
        cache.add(("E", str(k)))
    assert len(cache) == 3 and ("E", "0") not in cache and ("E", "4") in cache


def test_dead_letter_id_is_stable_across_redelivery() -> None:
    a = Incoming("mqtt", "t/x", b"\x00bad\xff", 1.0, Rejected("bad_json", "x"), 42)
    b = Incoming("mqtt", "t/x", b"\x00bad\xff", 99.0, Rejected("bad_json", "x"), 42, True)
    c = Incoming("mqtt", "t/x", b"\x00bad\xff", 1.0, Rejected("bad_json", "x"), 43)
    assert rejection_id(a) == rejection_id(b) != rejection_id(c)
    record = orjson.loads(rejection_record(a, Rejected(Reason.BAD_JSON, "m")))
    assert "\x00" not in record["excerpt"] and record["reason"] == "bad_json"
    http = Incoming("http", "/osmand", b"x", 1.0, Rejected("bad_json", "x"))
    assert rejection_id(http) != rejection_id(http)  # no redelivery over HTTP: unique


# --- SM2 in a pool ----------------------------------------------------------------------------


def test_sm2_pool_and_presigned_check() -> None:
    priv, pub = generate_sm2_keypair()
    data = [canonical_bytes({"msg_id": f"m{k}", "engineer_id": "E1"}) for k in range(24)]
    triples = [(pub, d, sign_sm2(priv, d, public_key_hex=pub)) for d in data]
    triples[5] = (pub, data[5], triples[6][2])  # a signature over other bytes
    pool = Sm2Pool(2)
    pool.start(warm=True)
    try:
        assert pool.ready
        results = asyncio.run(pool.verify_many(triples))
    finally:
        pool.close()
    assert results == [k != 5 for k in range(24)]
    assert asyncio.run(Sm2Pool(0).verify_many(triples[:3])) == [True, True, True]
    # a backlog batch (more than INLINE_MAX) is spread over the pool, in order
    big = [triples[k % 24] for k in range(INLINE_MAX + 40)]
    pool = Sm2Pool(2)
    pool.start(warm=True)
    try:
        assert asyncio.run(pool.verify_many(big)) == [k % 24 != 5 for k in range(len(big))]
    finally:
        pool.close()
    # steady-state batches are verified inline: the pool's processes are never started
    lazy = Sm2Pool(2)
    lazy.start()
    try:
        assert asyncio.run(lazy.verify_many(triples)) == [k != 5 for k in range(24)]
        assert not lazy.ready and not lazy._warming
    finally:
        lazy.close()

    class Directory:
        def engineer(self, engineer_id: str) -> EngineerIdentity:
            return EngineerIdentity(engineer_id, pub)

        def device(self, device_id: str) -> None:
            return None

        def project_retired(self, project_id: str) -> bool:
            return False

    records = [
        Fix(f"m{k}", "E1", 1.7e9, 114.0, 22.5, None, "position", "checkin", canonical=d, sig=s)
        for k, (_p, d, s) in enumerate(triples[:8])
    ]
    assert len(sm2_work(records, Directory())) == 8
    answers = dict(zip(triples[:8], results[:8], strict=True))
    verdicts = check_many(records, Directory(), verify_sm2=lambda p, d, s: answers[(p, d, s)])
    assert [v.reason if v else None for v in verdicts] == [
        "bad_signature" if k == 5 else None for k in range(8)
    ]


def test_poison_message_becomes_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest import bridge

    def boom(*_a: Any, **_k: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(bridge, "decode_mqtt", boom)
    got = bridge.decode(bridge.Arrived(1, 1, False, "sitewatch/checkin/E1", b"{}", 1.0, 1))
    assert isinstance(got, Rejected) and got.reason == Reason.INTERNAL_ERROR


def test_http_admit_forgets_keys_when_kafka_fails() -> None:
    from ingest.gate import Gate

    class FailingGate(Gate):
        async def check(self, items: Any) -> list[Rejected | None]:
            return [None] * len(items)

        async def seen_before(self, items: Any, verdicts: Any) -> set[tuple[str, str]]:
            return set()

        async def send(self, items: Any, verdicts: Any) -> list[Any]:
            raise ConnectionError("Kafka is gone")

    gate = FailingGate.__new__(FailingGate)
    gate.seen = SeenCache(10)
    with pytest.raises(ConnectionError):
        asyncio.run(gate.admit([_incoming("x")]))
    assert ("E1", "x") not in gate.seen


def _v5_publish(topic: bytes, payload: bytes, mid: int, qos: int, props: bytes = b"\x00") -> bytes:
    rest = struct.pack("!H", len(topic)) + topic
    if qos:
        rest += struct.pack("!H", mid)
    rest += props + payload
    from measure.mqtt_publishers import _varint

    return bytes([0x30 | (qos << 1)]) + _varint(len(rest)) + rest


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(max_size=3000), st.sampled_from([0, 1]), st.booleans()),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(1, 5000), min_size=1, max_size=30),
)
def test_bulk_reader_over_a_socket(
    messages: list[tuple[bytes, int, bool]], cuts: list[int]
) -> None:
    """PUBLISH packets (with PINGRESPs between some) written in arbitrary pieces arrive whole,
    in order, through the bulk parser and paho's own path alike."""
    import socket

    import paho.mqtt.client as mqtt

    stream = b""
    expected = []
    for k, (payload, qos, ping) in enumerate(messages):
        mid = k + 1 if qos else 0
        topic = f"sitewatch/checkin/E{k}".encode()
        stream += _v5_publish(topic, payload, mid, qos, b"\x02\x01\x01" if k % 3 else b"\x00")
        expected.append((mid, qos, False, topic, payload))
        if ping:
            stream += b"\xd0\x00"  # PINGRESP: paho's path

    async def run() -> list[tuple[int, int, bool, bytes, bytes]]:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        a.setblocking(False)
        client = AsyncMqttClient(loop, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True)
        got: list[tuple[int, int, bool, bytes, bytes]] = []
        done = asyncio.Event()

        def handler(*fields: Any) -> None:
            got.append(fields)
            if len(got) == len(expected):
                done.set()

        client.on_publish_raw = handler
        client._sock = a  # noqa: SLF001 - a connected client without a broker
        client._aio_sock = a  # noqa: SLF001
        loop.add_reader(a, client._read_ready)  # noqa: SLF001
        pos, k = 0, 0
        while pos < len(stream):
            step = cuts[k % len(cuts)]
            b.sendall(stream[pos : pos + step])
            pos += step
            k += 1
            await asyncio.sleep(0)
        await asyncio.wait_for(done.wait(), 10)
        loop.remove_reader(a)
        client._sock = None  # noqa: SLF001
        a.close()
        b.close()
        return got

    assert asyncio.run(run()) == expected


def test_sm2_pool_workers_exit_with_their_parent(tmp_path: Any) -> None:
    """A bridge killed with SIGKILL leaves no verification workers behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from ingest.sm2pool import Sm2Pool\n"
        "if __name__ == '__main__':\n"
        "    pool = Sm2Pool(2)\n"
        "    pool.start(warm=True)\n"
        "    print(' '.join(str(p) for p in pool._executor._processes), flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)

        def alive(pid: int) -> bool:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] != "Z"
            except FileNotFoundError:
                return False

        deadline = time.monotonic() + 15
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(p) for p in workers), "orphaned SM2 workers"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_directory_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from devices import directory

    monkeypatch.setattr(directory, "MAX_ENTRIES", 10)
    cache = directory.DirectoryCache.__new__(directory.DirectoryCache)
    cache._engineers = {f"x{k}": (0.0, None) for k in range(20)}  # noqa: SLF001
    cache._engineers["known"] = (0.0, EngineerIdentity("known"))  # noqa: SLF001
    cache._devices = {}  # noqa: SLF001
    cache._projects = {f"p{k}": (0.0, False) for k in range(20)}  # noqa: SLF001
    asyncio.run(cache.prefetch(set(), set()))
    assert list(cache._engineers) == ["known"]  # noqa: SLF001
    assert len(cache._projects) <= 10  # noqa: SLF001
