"""Every text that enters is checked once at the codec boundary: control characters (NUL
first), lone surrogates and non-characters are a `bad_text` rejection, wherever they sit in a
message (ids, msg_id, names, free text, metric names, keys, topics)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.codecs import decode_mqtt, decode_owntracks_http
from wire.fields import check_text
from wire.records import Rejected

NOW = 1_700_000_000.0
FORBIDDEN = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x85)]
FORBIDDEN += ["\ufffe", "\uffff"]


def checkin(**more: Any) -> dict[str, Any]:
    return {"msg_id": "m-1", "engineer_id": "E1", "ts": NOW - 10, "lat": 22.5, "lon": 114.0} | more


def reason(topic: str, obj: dict[str, Any] | bytes) -> str:
    payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    with pytest.raises(Rejected) as caught:
        decode_mqtt(topic, payload, now=NOW)
    return caught.value.reason


@pytest.mark.parametrize(
    ("topic", "obj"),
    [
        ("sitewatch/checkin/E1", checkin(msg_id="a\x00")),
        ("sitewatch/checkin/E1", checkin(kind="position", note="\x00")),
        ("sitewatch/checkin/E1", checkin(**{"k\x00": 1})),
        ("owntracks/E1/phone", {"_type": "lwt", "tst": NOW - 10, "x": "\x00"}),
        (
            "owntracks/E1/phone",
            {"_type": "transition", "tst": NOW - 10, "event": "enter", "desc": "gate\x00"},
        ),
        (
            "sitewatch/logs/E1",
            {
                "msg_id": "l1",
                "project_id": "P1",
                "ts": NOW - 10,
                "lat": 22.5,
                "lon": 114.0,
                "text": "poured\x00",
            },
        ),
        (
            "sitewatch/devices/D1/telemetry",
            {"msg_id": "t1", "ts": NOW - 10, "metrics": {"pm\x0010": 1}},
        ),
        ("owntracks/E1/ph\x00ne", {"_type": "location", "tst": NOW - 10, "lat": 1, "lon": 1}),
        ("sitewatch/checkin/E\x001", checkin(engineer_id="E\x001")),
    ],
)
def test_nul_anywhere_is_bad_text(topic: str, obj: dict[str, Any]) -> None:
    assert reason(topic, obj) == "bad_text"


def test_free_text_keeps_tabs_and_newlines() -> None:
    log = {
        "msg_id": "l1",
        "project_id": "P1",
        "ts": NOW - 10,
        "lat": 22.5,
        "lon": 114.0,
        "text": "line 1\n\tline 2\r\n",
    }
    record = decode_mqtt("sitewatch/logs/E1", json.dumps(log).encode(), now=NOW)
    assert record.text == "line 1\n\tline 2\r\n"  # type: ignore[union-attr]


def test_ids_follow_the_registered_pattern() -> None:
    assert reason("sitewatch/checkin/..", checkin(engineer_id="..")) == "bad_value"
    assert (
        reason(
            "sitewatch/logs/E1",
            {"msg_id": "l", "project_id": "./x", "ts": NOW - 10, "lat": 1, "lon": 1, "text": "t"},
        )
        == "bad_value"
    )


def test_owntracks_http_user_and_device() -> None:
    body = json.dumps({"_type": "lwt", "tst": NOW - 10}).encode()
    for user, device in (("E1\x00", "p"), ("E1", "p\x00")):
        with pytest.raises(Rejected) as caught:
            decode_owntracks_http(user, device, body, now=NOW)
        assert caught.value.reason == "bad_text"


@settings(max_examples=300, deadline=None)
@given(
    bad=st.sampled_from(FORBIDDEN) | st.integers(0xD800, 0xDFFF).map(chr),
    field=st.sampled_from(["msg_id", "note", "key", "nested"]),
    prefix=st.text(max_size=5),
)
def test_no_forbidden_character_is_ever_accepted(bad: str, field: str, prefix: str) -> None:
    text = prefix + bad
    obj = checkin()
    if field == "key":
        obj[text] = 1
    elif field == "nested":
        obj["extra"] = {"a": [text]}
    else:
        obj[field] = text
    # json.dumps escapes every control character and lone surrogate (\\u0000, \\ud800)
    payload = json.dumps(obj).encode()
    with pytest.raises(Rejected) as caught:
        decode_mqtt("sitewatch/checkin/E1", payload, now=NOW)
    assert caught.value.reason in ("bad_text", "bad_encoding")


@given(st.text(max_size=30))
def test_check_text_agrees_with_the_definition(text: str) -> None:
    allowed = all(
        not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF)
        and c not in "\ufffe\uffff"
        for c in text
    )
    try:
        check_text(text, "t")
    except Rejected:
        assert not allowed
    else:
        assert allowed
