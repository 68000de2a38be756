"""The worker's pure parts: its retry policy, the metadata it writes, its metrics and progress."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from doq.worker.metrics import _WorkerCollector
from doq.worker.policy import (
    ATTEMPTS_KEY,
    RetryPolicy,
    attempts_of,
    parked_metadata,
    retry_metadata,
)
from doq.worker.stats import WorkerStats


def test_backoff_doubles_up_to_its_maximum_and_attempts_run_out():
    policy = RetryPolicy(attempts_max=4, backoff_s_first=2.0, backoff_s_max=10.0)
    assert [policy.backoff_s(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
    assert not policy.exhausted(3) and policy.exhausted(4)
    with pytest.raises(ValueError):
        RetryPolicy(attempts_max=0)


def test_attempts_are_counted_in_the_metadata_and_kept_beside_the_users_keys():
    assert attempts_of(None) == 0 and attempts_of({ATTEMPTS_KEY: "junk"}) == 0
    assert retry_metadata({"k": "v"}, 2) == {"k": "v", ATTEMPTS_KEY: "2"}
    parked = parked_metadata({"k": "v"}, 3, "E" * 5000, "q", 7)
    assert parked["k"] == "v" and len(parked["doq_error"]) == 2000
    assert (parked["doq_source_queue"], parked["doq_source_id"]) == ("q", "7")


def test_metrics_and_the_progress_line_read_the_stats():
    stats = WorkerStats()
    stats.succeeded(0.5)
    stats.succeeded(1.5)
    stats.failed_after(1.0)
    stats.parked = 1
    registry = CollectorRegistry()
    registry.register(_WorkerCollector(stats, "emails"))
    text = generate_latest(registry).decode()
    assert 'doq_worker_done_total{queue="emails"} 2.0' in text
    assert 'doq_worker_parked_total{queue="emails"} 1.0' in text
    assert 'doq_worker_handler_seconds_total{queue="emails"} 3.0' in text
    assert stats.progress_line(3.0) == (
        "done 2  failed 1  parked 1  1.0 msg/s  handler 1000.0 ms mean"
    )
