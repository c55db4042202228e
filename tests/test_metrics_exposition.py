"""/metrics is valid Prometheus text (prometheus-client writes it; its parser reads it back)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from live_api import metrics


class _Conn:
    async def execute(self, _query: Any) -> list[tuple[str, int]]:
        return [("bad_json", 4), ('odd"reason\\', 1)]


async def _totals(_conn: Any) -> list[tuple[str, str, int]]:
    return [("mqtt", "accepted", 12), ("http", "replay", 2)]


def test_every_family_parses_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics.counters, "totals", _totals)
    gate = type("G", (), {"counts": {"accepted": 3}})()
    hub = type("H", (), {"subscribers": {1, 2}, "delivered": 7})()
    body = asyncio.run(metrics.exposition(gate, hub, _Conn())).decode()  # type: ignore[arg-type]
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert (
        samples[("sitewatch_ingest_messages_total", (("outcome", "accepted"), ("source", "mqtt")))]
        == 12
    )
    assert (
        samples[("sitewatch_ingest_messages_total", (("outcome", "replay"), ("source", "http")))]
        == 2
    )
    assert samples[("sitewatch_http_ingest_total", (("outcome", "accepted"),))] == 3
    assert samples[("sitewatch_ws_clients", ())] == 2
    assert samples[("sitewatch_ws_delivered_total", ())] == 7
    # a label value with a quote and a backslash is escaped, not spliced
    assert samples[("sitewatch_rejected_messages", (("reason", 'odd"reason\\'),))] == 1
