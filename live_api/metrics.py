"""`/metrics` in Prometheus' text format, written by prometheus-client. Every figure is read
at the scrape (the gate's and the hub's counts of this process, the database's tables), so each
scrape registers one snapshot of metric families in a registry of its own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest import counters
from ingest.gate import Gate
from live_api.hub import Hub


class _Snapshot(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def exposition(gate: Gate, hub: Hub, conn: AsyncConnection) -> bytes:
    http = CounterMetricFamily(
        "sitewatch_http_ingest", "HTTP ingest outcomes of this API process", labels=["outcome"]
    )
    for outcome, n in sorted(gate.counts.items()):
        http.add_metric([outcome], n)
    rejected = GaugeMetricFamily(
        "sitewatch_rejected_messages", "Rows of the rejected log per reason", labels=["reason"]
    )
    rows = await conn.execute(text("SELECT reason, count(*) FROM rejected_messages GROUP BY 1"))
    for reason, n in rows:
        rejected.add_metric([reason], n)
    ingest = CounterMetricFamily(
        "sitewatch_ingest_messages",
        "Ingest outcomes (accepted, each rejection reason, redelivered) per source (mqtt = the "
        "bridge, http = /osmand and /owntracks)",
        labels=["source", "outcome"],
    )
    for source, outcome, total in await counters.totals(conn):
        ingest.add_metric([source, outcome], total)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        _Snapshot(
            [
                http,
                GaugeMetricFamily(
                    "sitewatch_ws_clients", "Open live WebSockets", value=len(hub.subscribers)
                ),
                CounterMetricFamily(
                    "sitewatch_ws_delivered", "Live messages delivered", value=hub.delivered
                ),
                rejected,
                ingest,
            ]
        )
    )
    return generate_latest(registry)
