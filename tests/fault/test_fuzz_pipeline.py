"""Hostile input through every codec and on into the stream worker (no stack needed).

tests/ingest/test_ingest_hostile.py proves each decoder returns a record or raises Rejected.
This run follows what a decoder *accepts* further down the pipeline: the Kafka form the gate
writes must decode in the worker to the same record, and the worker's pure batch functions
(rules, geofencing, device thresholds, the state it writes to its table, the live messages)
must not raise on it. An accepted record that the worker cannot process would be skipped or,
worse, stop its partition: a message accepted and then lost.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from config.settings import Settings
from geofence.fences import Fence, FenceIndex
from geofence.regions import Region, RegionIndex
from rules.engineer_batch import EngineerFacts, EngineerState, process_engineer_batch
from rules.fences import Fences
from streams import device_batch
from streams.worker import _json_default
from wire.codecs import decode_mqtt, decode_osmand, decode_owntracks_http
from wire.records import Record, Rejected, Telemetry, from_dict, to_dict, to_json

NOW = 1_700_000_300.0
SETTINGS = Settings()
FENCES = Fences(
    1,
    FenceIndex.build([Fence("P", box(113.92, 22.52, 113.94, 22.54), "440305")]),
    RegionIndex.build([Region("440305", "南山区", box(113.8, 22.4, 114.0, 22.6))]),
    {"P": "440305"},
)
DEVICES = {
    "D1": device_batch.DeviceFacts("P", "440305", {"a": {"min": 0, "max": 1}, "b": {"max": 5}})
}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEMPLATES: dict[str, dict[str, Any]] = {
    "owntracks/E1/phone": {
        "_type": "location",
        "lat": 22.53,
        "lon": 113.93,
        "tst": 1_700_000_000,
        "acc": 5,
        "vel": 3,
        "batt": 50,
        "tid": "p",
    },
    "owntracks/E1/phone/event": {
        "_type": "transition",
        "event": "enter",
        "tst": 1_700_000_000,
        "lat": 22.53,
        "lon": 113.93,
        "desc": "P",
    },
    "sitewatch/checkin/E1": {
        "msg_id": "m",
        "engineer_id": "E1",
        "ts": 1_700_000_000,
        "lat": 22.53,
        "lon": 113.93,
        "acc": 3,
        "crs": "gcj02",
        "kind": "checkin",
    },
    "sitewatch/logs/E1": {
        "msg_id": "l",
        "project_id": "P",
        "ts": 1_700_000_000,
        "lat": 22.53,
        "lon": 113.93,
        "text": "ok",
        "crs": "bd09",
    },
    "sitewatch/devices/D1/telemetry": {
        "msg_id": "t",
        "ts": 1_700_000_000,
        "metrics": {"a": 1, "b": 2},
        "lat": 22.53,
        "lon": 113.93,
    },
}

# Values a sender may put in any field: valid extremes more than garbage (the decoders'
# own hostile tests cover garbage), so that many mutated messages are accepted.
EXTREMES = st.one_of(
    st.sampled_from(
        [
            0,
            -0.0,
            1,
            -1,
            90,
            -90,
            180,
            -180,
            89.9999999,
            179.9999999,
            5e-324,
            1e-7,
            99.99,
            100,
            100.0000001,
            1e308,
            2**53,
            2**63,
            1_700_000_000_000,
            1_700_000_299.999,
            "1700000000",
            "2023-11-14T22:13:20Z",
            "2023-11-15T06:13:20+08:00",
            "2023-11-14T22:13:20.123456",
            "wgs84",
            "gcj02",
            "bd09",
            "WGS84",
            "checkin",
            "checkout",
            "position",
            "enter",
            "leave",
            "",
            " ",
            "名字",
            "\u0000",
            "x" * 500,
            True,
            False,
            None,
            [],
            {},
            {"a": 1e308},
            {"a": -1e308, "b": 0},
            {str(i): i for i in range(60)},
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**64), 2**64),
    st.text(max_size=40),
)


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any]) -> dict[str, Any]:
    obj = dict(template)
    for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=3, unique=True)):
        if draw(st.booleans()):
            obj[key] = draw(EXTREMES)
        else:
            del obj[key]
    for _ in range(draw(st.integers(0, 2))):
        obj[draw(st.text(max_size=8))] = draw(EXTREMES)
    return obj


def downstream(record: Record) -> None:
    """What happens to an accepted record after the gate: Kafka form, worker decode, rules."""
    wire = to_json(record, received_at=NOW)
    back = from_dict(orjson.loads(wire))
    assert to_dict(back) == to_dict(record), "the worker would read another record"
    if isinstance(back, Telemetry):
        out = device_batch.process(
            [back, back],
            devices=DEVICES,
            states={},
            settings=SETTINGS,
            received=[NOW, NOW],
        )
        orjson.dumps(out.live, default=_json_default)
        orjson.dumps(out.states)
        return
    facts = {
        "E1": EngineerFacts("110105", (("440300", dt.date(2000, 1, 1), dt.date(2099, 1, 1), None),))
    }
    out = process_engineer_batch(
        [back, back], fences=FENCES, states={}, facts=facts, settings=SETTINGS
    )
    orjson.dumps(out.live, default=_json_default)
    for state in out.states.values():  # what the worker writes to its table and reads back
        assert isinstance(
            EngineerState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))), EngineerState
        )
    again = process_engineer_batch(
        [back], fences=FENCES, states=dict(out.states), facts=facts, settings=SETTINGS
    )
    assert not again.alerts, "a redelivered record raised an alert twice"


def accept_or_reject(decode: Any, *args: Any) -> None:
    try:
        record = decode(*args)
    except Rejected:
        return
    downstream(record)


@pytest.mark.parametrize("topic", sorted(TEMPLATES))
@FUZZ
@given(data=st.data())
def test_mqtt_messages_accepted_are_processed(topic: str, data: st.DataObject) -> None:
    obj = data.draw(mutated(TEMPLATES[topic]))
    payload = json.dumps(obj, ensure_ascii=data.draw(st.booleans())).encode()
    accept_or_reject(lambda: decode_mqtt(topic, payload, now=NOW))


@FUZZ
@given(data=st.data())
def test_owntracks_http_accepted_is_processed(data: st.DataObject) -> None:
    obj = data.draw(mutated(TEMPLATES["owntracks/E1/phone"]))
    body = json.dumps(obj).encode()
    accept_or_reject(lambda: decode_owntracks_http("E1", "phone", body, now=NOW))


OSMAND = {
    "id": "E1",
    "lat": "22.53",
    "lon": "113.93",
    "timestamp": "1700000000",
    "speed": "1.5",
    "bearing": "90",
    "altitude": "10",
    "accuracy": "5",
    "batt": "80",
}


@FUZZ
@given(data=st.data())
def test_osmand_accepted_is_processed(data: st.DataObject) -> None:
    params = {k: str(v) for k, v in data.draw(mutated(OSMAND)).items() if v is not None}
    as_json = data.draw(st.booleans())
    if as_json:  # Traccar Client 9 JSON body
        body = json.dumps(
            {
                "device_id": params.get("id", "E1"),
                "location": {
                    "timestamp": params.get("timestamp", "2023-11-14T22:13:20Z"),
                    "coords": {
                        "latitude": data.draw(EXTREMES),
                        "longitude": data.draw(EXTREMES),
                        "accuracy": data.draw(EXTREMES),
                    },
                    "battery": {"level": data.draw(EXTREMES)},
                },
            }
        ).encode()
        accept_or_reject(lambda: decode_osmand({}, body, "application/json", now=NOW))
    elif data.draw(st.booleans()):  # query string
        accept_or_reject(lambda: decode_osmand(params, None, None, now=NOW))
    else:  # form body
        body = urlencode(params).encode()
        accept_or_reject(
            lambda: decode_osmand({}, body, "application/x-www-form-urlencoded", now=NOW)
        )
