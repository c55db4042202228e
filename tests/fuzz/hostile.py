"""Hypothesis strategies for hostile input: texts with control characters, NUL, lone
surrogates and look-alike digits, huge and odd numbers, deep nesting, duplicate keys, wrong
encodings and content types, applied to every wire format SiteWatch ingests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from hypothesis import strategies as st

FORBIDDEN_CHARS = [chr(c) for c in (*range(0x00, 0x20), 0x7F, 0x85, 0x9F)] + ["\ufffe", "\uffff"]
SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
TRICKY_TEXTS = [
    "",
    " ",
    ".",
    "..",
    "../../etc/passwd",
    "%00",
    "\\u0000",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "\u202eevil",  # right-to-left override
    "\u0662\u0662.5",  # Arabic-Indic digits
    "\uff11\uff11\uff14",  # full-width digits
    "NaN",
    "Infinity",
    "1e309",
    "-0",
    "张工",
    "E1",
    "sitewatch-admin",
]


@st.composite
def hostile_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["forbidden", "surrogate", "tricky", "long", "random"]))
    prefix = draw(st.text(max_size=6))
    if kind == "forbidden":
        return prefix + draw(st.sampled_from(FORBIDDEN_CHARS)) + draw(st.text(max_size=4))
    if kind == "surrogate":
        return prefix + draw(SURROGATES)
    if kind == "tricky":
        return draw(st.sampled_from(TRICKY_TEXTS))
    if kind == "long":
        # long enough for every id and msg_id limit, short enough for a URL (h11: 16 KiB)
        return draw(st.sampled_from(["x", "张", "\u0000"])) * draw(st.integers(65, 1_000))
    return draw(st.text(max_size=40))


HOSTILE_NUMBERS = st.sampled_from(
    [10**400, -(10**400), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, 0, -1, 10**19]
) | st.floats(allow_nan=False)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    depth = draw(st.integers(17, 500))  # json.dumps recurses per level
    value: Any = draw(st.sampled_from([1, "x", None]))
    for _ in range(depth):
        value = [value] if draw(st.booleans()) else {"a": value}
    return value


def hostile_value() -> st.SearchStrategy[Any]:
    return st.one_of(
        hostile_text(),
        HOSTILE_NUMBERS,
        st.sampled_from([None, True, False, [], {}, [1, 2], {"a": 1}]),
        deep(),
    )


def query(params: dict[str, Any]) -> str:
    """A query string as a hostile client writes it: lone surrogates percent-encoded as the
    (invalid) UTF-8 bytes they would have."""
    return urlencode(params, encoding="utf-8", errors="surrogatepass")


def dumps(obj: Any) -> bytes:
    """JSON as a sender might write it: escapes for everything, NaN allowed, huge ints kept."""
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def hostile_object(draw: st.DrawFn, template: dict[str, Any]) -> bytes:
    """`template` with one hostile twist, serialised (or mis-serialised)."""
    obj = dict(template)
    twist = draw(
        st.sampled_from(
            ["value", "value", "value", "key", "duplicate", "encoding", "truncate", "not_object"]
        )
    )
    if twist == "value":
        obj[draw(st.sampled_from(sorted(obj)))] = draw(hostile_value())
        return dumps(obj)
    if twist == "key":
        obj[draw(hostile_text())] = draw(hostile_value())
        return dumps(obj)
    if twist == "duplicate":
        field = draw(st.sampled_from(sorted(obj)))
        raw = dumps(obj)
        return raw[:-1] + b", " + dumps(field) + b": " + dumps(draw(hostile_value())) + b"}"
    if twist == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "gb18030"]))
        return json.dumps(obj, ensure_ascii=False).encode(codec, "replace") + "张".encode("gbk")
    if twist == "truncate":
        raw = dumps(obj)
        return raw[: draw(st.integers(0, len(raw) - 1))]
    return dumps(draw(st.sampled_from([[obj], "x", 1, None])))


def mqtt_templates(engineer: str, device: str, now: float) -> dict[str, dict[str, Any]]:
    """A valid message per MQTT topic SiteWatch ingests."""
    ts = round(now - 30, 3)
    return {
        f"sitewatch/checkin/{engineer}": {
            "msg_id": "fz",
            "engineer_id": engineer,
            "ts": ts,
            "lat": 22.54,
            "lon": 113.94,
            "acc": 5,
            "kind": "checkin",
        },
        f"owntracks/{engineer}/phone": {
            "_type": "location",
            "lat": 22.54,
            "lon": 113.94,
            "tst": int(ts),
            "acc": 5,
            "tid": "ph",
        },
        f"owntracks/{engineer}/phone/event": {
            "_type": "transition",
            "event": "enter",
            "desc": "gate",
            "tst": int(ts),
            "wtst": int(ts) - 100,
        },
        f"sitewatch/logs/{engineer}": {
            "msg_id": "fz-log",
            "project_id": "P-fz",
            "ts": ts,
            "lat": 22.54,
            "lon": 113.94,
            "text": "浇筑旁站",
        },
        f"sitewatch/devices/{device}/telemetry": {
            "msg_id": "fz-t",
            "ts": ts,
            "metrics": {"pm10": 35.5, "noise_db": 61},
        },
    }


@st.composite
def hostile_mqtt(draw: st.DrawFn, engineer: str, device: str, now: float) -> tuple[str, bytes]:
    """(topic, payload): a hostile payload on an ingest topic, or a hostile topic."""
    templates = mqtt_templates(engineer, device, now)
    if draw(st.integers(0, 9)) == 0:
        # Mosquitto itself disconnects a client whose topic holds a control character or a
        # non-character (MQTT 5, 1.5.4): what reaches the bridge is the rest.
        bad_id = (
            "".join(
                c
                for c in draw(hostile_text())
                if c not in "/+#"
                and not (ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF)
                and ord(c) & 0xFFFE != 0xFFFE
            )[:100]
            or "x"
        )
        template = templates[f"sitewatch/checkin/{engineer}"]
        return f"sitewatch/checkin/{bad_id}", dumps({**template, "engineer_id": bad_id})
    topic = draw(st.sampled_from(sorted(templates)))
    return topic, draw(hostile_object(templates[topic]))


@st.composite
def hostile_osmand(draw: st.DrawFn, engineer: str, now: float) -> dict[str, Any]:
    """httpx request arguments for /osmand: query, form or Traccar JSON, with a twist."""
    params: dict[str, Any] = {
        "id": engineer,
        "lat": "22.54",
        "lon": "113.94",
        "timestamp": str(int(now - 30)),
        "speed": "1.5",
        "batt": "80",
    }
    field = draw(st.sampled_from([*sorted(params), "extra"]))
    params[field] = draw(hostile_text() | HOSTILE_NUMBERS.map(str))
    form = draw(st.sampled_from(["get", "get_json_header", "post_form", "post_json"]))
    if form == "get":
        return {"method": "GET", "url": "/osmand?" + query(params)}
    if form == "get_json_header":
        return {
            "method": "GET",
            "url": "/osmand?" + query(params),
            "headers": {"content-type": "application/json"},
        }
    if form == "post_form":
        return {
            "method": "POST",
            "url": "/osmand",
            "content": query(params).encode(),
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        }
    body = {
        "device_id": params["id"],
        "location": {
            "timestamp": "2026-12-05T00:00:00Z",
            "coords": {"latitude": 22.54, "longitude": 113.94},
        },
    }
    raw = draw(hostile_object(body))
    ctype = draw(st.sampled_from(["application/json", "text/plain", "application/xml", ""]))
    return {"method": "POST", "url": "/osmand", "content": raw, "headers": {"content-type": ctype}}


@st.composite
def hostile_owntracks(draw: st.DrawFn, engineer: str, now: float) -> dict[str, Any]:
    templates = mqtt_templates(engineer, "D", now)
    template = templates[
        draw(st.sampled_from([f"owntracks/{engineer}/phone", f"owntracks/{engineer}/phone/event"]))
    ]
    user = draw(st.sampled_from([engineer, None]) | hostile_text())
    device = draw(st.sampled_from(["phone", None]) | hostile_text())
    params = {k: v for k, v in (("u", user), ("d", device)) if v is not None}
    headers = {"content-type": draw(st.sampled_from(["application/json", "text/plain", ""]))}
    if (
        draw(st.booleans())
        and user
        and user.isascii()
        and user.isprintable()
        and user.strip() == user
    ):
        headers["x-limit-u"] = user
        params.pop("u", None)
    return {
        "method": "POST",
        "url": "/owntracks?" + query(params),
        "content": draw(hostile_object(template)),
        "headers": headers,
    }
