"""Prometheus metrics of one node, in a registry of its own (never the process-global one, so two
nodes in one process, as in tests, do not collide).

Queue and Raft figures are read at scrape time from the replicated state and the Raft driver (a
custom collector), so nothing on the request path updates them; HTTP request counts and durations
are recorded per request by the API. Queue metric names are the Go server's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import attrs
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from doq.service import QueueService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HTTP_DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# hashicorp/raft's RaftState numbers, which the Go server exported; pre-candidate counts as
# candidate (it is campaigning), and a stopped node reports 3 (hashicorp's Shutdown).
RAFT_STATE_NUMBERS = {"follower": 0, "pre-candidate": 1, "candidate": 1, "leader": 2}
RAFT_STATE_STOPPED = 3

log = logging.getLogger("doq.metrics")


class QueueAndRaftCollector(Collector):
    """Queue counters and gauges from the local replica, Raft gauges from the driver."""

    def __init__(self, service: QueueService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        yield from self._queue_metrics()
        yield from self._raft_metrics()
        yield from self._storage_metrics()
        yield from self._clock_metrics()

    def _queue_metrics(self) -> Iterator[Metric]:
        label = ["queue_name"]
        families = {
            "enqueue": CounterMetricFamily("doq_queues_enqueue", "Messages enqueued", labels=label),
            "dequeue": CounterMetricFamily(
                "doq_queues_dequeue", "Messages delivered", labels=label
            ),
            "ack": CounterMetricFamily("doq_queues_ack", "Messages acknowledged", labels=label),
            "nack": CounterMetricFamily("doq_queues_nack", "Messages returned", labels=label),
            "messages": GaugeMetricFamily(
                "doq_queues_messages", "Messages in the queue", labels=label
            ),
            "unacked": GaugeMetricFamily(
                "doq_queues_unacked_messages", "Messages in flight", labels=label
            ),
            "ready": GaugeMetricFamily(
                "doq_queues_ready_messages", "Messages not in flight", labels=label
            ),
        }
        try:
            infos = self._service.state.list_queues()
        except Exception:  # a closed environment at shutdown: report no queues, not an error
            log.debug("queue metrics unavailable", exc_info=True)
            infos = []
        for info in infos:
            name = [info.name]
            families["enqueue"].add_metric(name, info.enqueued_total)
            families["dequeue"].add_metric(name, info.dequeued_total)
            families["ack"].add_metric(name, info.acked_total)
            families["nack"].add_metric(name, info.nacked_total)
            families["messages"].add_metric(name, info.total)
            families["unacked"].add_metric(name, info.unacked)
            families["ready"].add_metric(name, info.ready)
        yield from families.values()

    def _raft_metrics(self) -> Iterator[Metric]:
        raft = self._service.raft
        status: dict[str, Any] = {}
        if raft.core is not None:
            status = raft.status()
        state = RAFT_STATE_NUMBERS.get(str(status.get("role")), RAFT_STATE_STOPPED)
        gauges = {
            "doq_raft_term": ("Current Raft term", status.get("term", 0)),
            "doq_raft_state": ("0 follower, 1 candidate, 2 leader, 3 stopped", state),
            "doq_raft_commit_index": ("Highest log index known committed", status.get("commit", 0)),
            "doq_raft_applied_index": ("Highest log index applied here", raft.applied_index),
            "doq_raft_log_entries": ("Entries in the local log", status.get("log_entries", 0)),
            "doq_raft_snapshot_index": (
                "Index of the latest snapshot",
                status.get("snapshot_index", 0),
            ),
        }
        for name, (documentation, value) in gauges.items():
            yield GaugeMetricFamily(name, documentation, value=value)
        for key, value in sorted(dict(status.get("stats", {})).items()):
            yield CounterMetricFamily(f"doq_raft_{key}", f"Raft driver: {key}", value=value)
        if raft.transport is not None:
            stats = attrs.asdict(raft.transport.stats())
            for key, value in sorted(stats.items()):
                yield CounterMetricFamily(
                    f"doq_raft_transport_{key}", f"Raft transport: {key}", value=value
                )

    def _storage_metrics(self) -> Iterator[Metric]:
        """The disk's room, read now (doq/diskguard.py): free bytes, and whether writes are
        refused for want of it."""
        disk = self._service.disk
        blocked = self._service.storage_short()
        yield GaugeMetricFamily(
            "doq_storage_free_bytes",
            "Bytes free on the disk of this node's data directory (-1: cannot be read)",
            value=-1 if disk.free_bytes is None else disk.free_bytes,
        )
        yield GaugeMetricFamily(
            "doq_storage_reserve_bytes",
            "Free bytes below which this node refuses writes",
            value=disk.reserve_bytes,
        )
        yield GaugeMetricFamily(
            "doq_storage_writes_blocked",
            "1 while writes are refused (507) for want of disk room, else 0",
            value=int(blocked),
        )
        yield CounterMetricFamily(
            "doq_storage_writes_refused",
            "Writes refused (507) for want of disk room",
            value=disk.refused_writes,
        )

    def _clock_metrics(self) -> Iterator[Metric]:
        """How the voters' clocks stand to this node's (doq/clockbound.py)."""
        service = self._service
        skew = GaugeMetricFamily(
            "doq_clock_skew_ms",
            "A voter's clock minus this node's, as last probed (ms)",
            labels=["peer"],
        )
        for peer, skew_ms in sorted(service.clock_skews_ms().items()):
            skew.add_metric([peer], skew_ms)
        yield skew
        yield GaugeMetricFamily(
            "doq_clock_majority_estimate",
            "1 while a majority of voters have a fresh clock estimate (writes need it), else 0",
            value=int(service.clock_window() is not None),
        )
        yield CounterMetricFamily(
            "doq_clock_stamps_clamped",
            "Command times moved into the window the voters' clocks allow",
            value=service.clamped_stamps,
        )


@attrs.define
class Metrics:
    """The node's registry and the HTTP instruments the API records into."""

    registry: CollectorRegistry
    http_requests: Counter
    http_duration_s: Histogram

    @classmethod
    def create(cls, service: QueueService) -> Metrics:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(QueueAndRaftCollector(service))
        http_requests = Counter(
            "doq_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=registry,
        )
        http_duration_s = Histogram(
            "doq_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=HTTP_DURATION_BUCKETS_S,
            registry=registry,
        )
        return cls(registry, http_requests, http_duration_s)

    def record_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration_s.labels(method, route).observe(duration_s)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
