"""End-to-end fuzzing of the running stack: hostile MQTT messages (paho, the service identity)
and hostile HTTP requests (httpx) on every ingest format and on every API route's query, with
valid fixes sent alongside. After each batch of examples the invariants hold:

- no HTTP answer is 5xx, and every error answer is JSON;
- every MQTT message and every ingest request has an outcome: the ingest counters (accepted,
  each reason) grow by exactly what was sent, and every rejection is counted in the rejected
  log's tallies;
- every valid fix sent alongside is persisted exactly once;
- the stack stays healthy: `/healthz` ok, the bridge and worker are the processes they were.

`make test` runs a few hundred hostile messages; `make fuzz` (SITEWATCH_FUZZ_MQTT,
SITEWATCH_FUZZ_HTTP) tens of thousands, and writes its figures to docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from stack.up import Stack
from tests.fuzz.hostile import (
    hostile_mqtt,
    hostile_osmand,
    hostile_owntracks,
    hostile_text,
    query,
)
from tests.ingest_stack.helpers import LAT, LON, register_device, registration, tag
from tests.stack_client import StackClient, wait_until

MQTT_MESSAGES = int(os.environ.get("SITEWATCH_FUZZ_MQTT", "400"))
HTTP_REQUESTS = int(os.environ.get("SITEWATCH_FUZZ_HTTP", "400"))
BATCH = 40  # hostile messages per hypothesis example
REPORT = os.environ.get("SITEWATCH_FUZZ_REPORT")  # a JSON file for `make fuzz`'s figures


@dataclass
class Tally:
    mqtt_sent: int = 0
    http_sent: int = 0
    api_sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    valid: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)


class Publisher:
    """One paho connection with the service identity; QoS 1, every PUBACK awaited."""

    def __init__(self, sw: StackClient) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(sw.endpoints["mqtt_username"], sw.endpoints["mqtt_password"])
        self.client.max_inflight_messages_set(200)
        self.client.connect(sw.endpoints["mqtt_host"], int(sw.endpoints["mqtt_port"]))
        self.client.loop_start()

    def publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published(), "the broker did not acknowledge a message"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def counters(sw: StackClient, source: str) -> int:
    """Every outcome of `source` the gate counted (a scrape flushes the API's own)."""
    httpx.get(sw.http + "/metrics", timeout=30).raise_for_status()
    rows = sw.sql("SELECT coalesce(sum(total), 0) FROM ingest_counters WHERE source = %s", source)
    return int(rows[0][0])


def rejections(sw: StackClient, source: str) -> int:
    rows = sw.sql("SELECT coalesce(sum(total), 0) FROM rejected_tallies WHERE source = %s", source)
    return int(rows[0][0])


def accepted(sw: StackClient, source: str) -> int:
    rows = sw.sql(
        "SELECT coalesce(sum(total), 0) FROM ingest_counters "
        "WHERE source = %s AND outcome IN ('accepted', 'redelivered')",
        source,
    )
    return int(rows[0][0])


@pytest.fixture(scope="module")
def world(sw: StackClient, running_stack: Stack) -> Iterator[dict[str, Any]]:
    t = tag()
    engineer, device = f"FZ-{t}", f"FZD-{t}"
    answer = registration(sw, engineer)
    register_device(sw, device)
    publisher = Publisher(sw)
    before = {s: (counters(sw, s), rejections(sw, s), accepted(sw, s)) for s in ("mqtt", "http")}
    pids = {name: child.pid for name, child in running_stack.components.items()}
    tally = Tally()
    yield {
        "engineer": engineer,
        "password": answer["mqtt_password"],
        "phone": answer["osmand_id"],
        "device": device,
        "publisher": publisher,
        "tally": tally,
        "before": before,
        "pids": pids,
        "http": httpx.Client(base_url=sw.http, timeout=60),
        "api": sw.api(),
        # one clock for the drawn data: hypothesis replays a draw and must get the same bytes
        "now": float(int(time.time())),
    }
    publisher.close()


def check_answer(tally: Tally, r: httpx.Response) -> None:
    tally.statuses[r.status_code] = tally.statuses.get(r.status_code, 0) + 1
    assert r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.headers.get("content-type", "").startswith("application/json"), r.text[:200]
        assert r.json()["detail"], r.text[:200]


def valid_checkin(world: dict[str, Any]) -> tuple[str, bytes]:
    msg_id = f"valid-{len(world['tally'].valid)}-{tag()}"
    world["tally"].valid.add(msg_id)
    body = {
        "msg_id": msg_id,
        "engineer_id": world["engineer"],
        "ts": round(time.time() - 30, 3),
        "lat": LAT,
        "lon": LON,
        "acc": 5,
    }
    return f"sitewatch/checkin/{world['engineer']}", json.dumps(body).encode()


FUZZ = settings(
    max_examples=max(1, MQTT_MESSAGES // BATCH),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@FUZZ
@given(data=st.data())
def test_hostile_mqtt(world: dict[str, Any], data: st.DataObject) -> None:
    now = world["now"]
    batch = [data.draw(hostile_mqtt(world["engineer"], world["device"], now)) for _ in range(BATCH)]
    batch.insert(BATCH // 2, valid_checkin(world))
    world["publisher"].publish_all(batch)
    world["tally"].mqtt_sent += len(batch)


@settings(FUZZ, max_examples=max(1, HTTP_REQUESTS // BATCH))
@given(data=st.data())
def test_hostile_http_ingest(world: dict[str, Any], data: st.DataObject) -> None:
    now = world["now"]
    client: httpx.Client = world["http"]
    for k in range(BATCH):
        if k % 2:
            request = data.draw(hostile_osmand(world["phone"], now))
        else:
            request = data.draw(hostile_owntracks(world["engineer"], now))
            if data.draw(st.integers(0, 9)):  # mostly signed in, as the app is
                request["auth"] = (world["engineer"], world["password"])
        check_answer(world["tally"], client.request(**request))
        world["tally"].http_sent += 1
    world["publisher"].publish_all([valid_checkin(world)])
    world["tally"].mqtt_sent += 1


@settings(FUZZ, max_examples=max(1, HTTP_REQUESTS // BATCH))
@given(data=st.data())
def test_hostile_api_queries_and_paths(
    world: dict[str, Any], sw: StackClient, data: st.DataObject
) -> None:
    """Every GET route of the OpenAPI document but the ingest ones (above), its path and
    query parameters hostile."""
    api: httpx.Client = world["api"]
    routes = world.setdefault("routes", _get_routes(sw))
    for _ in range(BATCH):
        path, params = data.draw(st.sampled_from(routes))
        value = data.draw(hostile_text())
        url = path
        segment = quote(value, safe="", encoding="utf-8", errors="surrogatepass")
        while "{" in url:
            start, end = url.index("{"), url.index("}")
            url = url[:start] + segment + url[end + 1 :]
        params_drawn = {p: data.draw(hostile_text()) for p in params if data.draw(st.booleans())}
        check_answer(world["tally"], api.get(f"{url}?{query(params_drawn)}"))
        world["tally"].api_sent += 1


def _get_routes(sw: StackClient) -> list[tuple[str, list[str]]]:
    document = httpx.get(sw.http + "/openapi.json", timeout=30).json()
    routes = []
    for path, operations in document["paths"].items():
        op = operations.get("get")
        if op is None or path.startswith("/ws") or "ingest" in op.get("tags", []):
            continue
        params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
        routes.append((path, params))
    return routes


def test_invariants_after_the_fuzz(
    world: dict[str, Any], sw: StackClient, running_stack: Stack
) -> None:
    """Runs after the fuzz tests of this module (pytest keeps file order)."""
    tally: Tally = world["tally"]
    before = world["before"]
    for source, sent in (("mqtt", tally.mqtt_sent), ("http", tally.http_sent)):
        start_count, start_rejected, start_accepted = before[source]
        wait_until(
            lambda s=source, n=sent, c=start_count: counters(sw, s) >= c + n or None,
            timeout_s=120,
            what=f"an outcome for each of the {sent} {source} messages",
        )
        assert counters(sw, source) == start_count + sent, source
        rejected = sent - (accepted(sw, source) - start_accepted)
        wait_until(
            lambda s=source, r=rejected, b=start_rejected: rejections(sw, s) >= b + r or None,
            timeout_s=120,
            what=f"{rejected} {source} rejections in the rejected log",
        )
    rows = wait_until(
        lambda: (
            got
            if tally.valid
            <= set(
                got := {
                    r[0]: int(r[1])
                    for r in sw.sql(
                        "SELECT msg_id, count(*) FROM fixes WHERE engineer_id = %s GROUP BY msg_id",
                        world["engineer"],
                    )
                }
            )
            else None
        ),
        timeout_s=120,
        what=f"{len(tally.valid)} valid fixes",
    )
    assert {m: rows[m] for m in tally.valid} == {m: 1 for m in tally.valid}
    health = httpx.get(sw.http + "/healthz", timeout=30)
    assert health.status_code == 200, health.text
    now = {name: child.pid for name, child in running_stack.components.items()}
    assert now == world["pids"], "a component restarted during the fuzz"
    figures = {
        "mqtt_hostile": tally.mqtt_sent - len(tally.valid),
        "http_ingest_hostile": tally.http_sent,
        "http_api_hostile": tally.api_sent,
        "valid_fixes": len(tally.valid),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "seconds": round(time.monotonic() - tally.started, 1),
        "server_errors": sum(v for k, v in tally.statuses.items() if k >= 500),
    }
    if REPORT:
        Path(REPORT).write_text(json.dumps(figures, indent=2))
    assert figures["server_errors"] == 0
