"""The worker's Prometheus metrics (``doq worker --metrics-port``), read from its stats at scrape
time, like the node's queue metrics (doq/metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily
from prometheus_client.registry import Collector

from doq.worker.stats import WorkerStats

_COUNTERS = {
    "done": "messages handled and acked",
    "failed": "handler failures (retried or parked)",
    "parked": "messages parked in the dead queue",
    "heartbeats": "touches of messages whose handler ran long",
    "lease_lost": "acks, nacks or touches that found the delivery over",
    "settle_failed": "acks, nacks or touches that no node took within the retries",
    "handler_s_total": "seconds spent in handlers",
}


class _WorkerCollector(Collector):
    def __init__(self, stats: WorkerStats, queue: str) -> None:
        self.stats = stats
        self.queue = queue

    def collect(self) -> Iterator[Any]:
        values = self.stats.as_dict()
        for name, help_text in _COUNTERS.items():
            metric_name = (
                "doq_worker_handler_seconds" if name == "handler_s_total" else f"doq_worker_{name}"
            )
            family = CounterMetricFamily(metric_name, help_text, labels=["queue"])
            family.add_metric([self.queue], float(values[name]))
            yield family


def serve_metrics(stats: WorkerStats, queue: str, port: int) -> None:
    REGISTRY.register(_WorkerCollector(stats, queue))
    start_http_server(port, addr="0.0.0.0")
