"""The live fan-out (live_api.hub) without a stack: who gets which event, serialised once, and
a client that cannot keep up loses messages with a log line instead of stalling the others."""

from __future__ import annotations

import json
import logging

import pytest

from live_api import hub as hub_module
from live_api.auth import Caller
from live_api.hub import Hub, Subscriber

EVENTS = [
    {"type": "position", "engineer_id": "E1", "region_code": "440305", "lon": 114.0},
    {"type": "position", "engineer_id": "E2", "region_code": "310104", "lon": 121.4},
]


def queued(sub: Subscriber) -> list[dict[str, object]]:
    out = []
    while not sub.queue.empty():
        out.append(json.loads(sub.queue.get_nowait()))
    return out


def test_each_subscriber_gets_what_its_role_and_region_cover() -> None:
    hub = Hub()
    admin = Subscriber(Caller("admin"), None)
    shenzhen = Subscriber(Caller("regulator", region_code="440300"), None)
    engineer = Subscriber(Caller("engineer", engineer_id="E2"), None)
    admin_in_shanghai = Subscriber(Caller("admin"), "310000")
    hub.subscribers |= {admin, shenzhen, engineer, admin_in_shanghai}
    hub.publish(EVENTS)
    assert queued(admin) == EVENTS
    assert queued(shenzhen) == EVENTS[:1]
    assert queued(engineer) == EVENTS[1:]
    assert queued(admin_in_shanghai) == EVENTS[1:]
    assert hub.delivered == 5


def test_a_full_queue_drops_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hub = Hub()
    slow = Subscriber(Caller("admin"), None)
    monkeypatch.setattr(slow.queue, "_maxsize", 1)
    fast = Subscriber(Caller("admin"), None)
    monkeypatch.setattr(fast.queue, "_maxsize", 10)
    hub.subscribers |= {slow, fast}
    with caplog.at_level(logging.WARNING, logger=hub_module.log.name):
        hub.publish(EVENTS * 2)
    assert slow.dropped == 3 and len(queued(slow)) == 1
    assert fast.dropped == 0 and queued(fast) == EVENTS * 2
    assert [r.getMessage() for r in caplog.records] == [
        "live client admin:* is 1 messages behind: 1 dropped so far"
    ]
