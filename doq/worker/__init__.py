"""doq's worker runtime: a handler per message with acks, retries, dead letters, heartbeats and
graceful shutdown (docs/client.md, "Worker"). ``run_worker`` from Python; ``doq worker`` from a
shell (doq/worker/cli.py)."""

from doq.worker.policy import RetryPolicy
from doq.worker.runtime import Job, Worker, WorkerSettings

__all__ = ["Job", "RetryPolicy", "Worker", "WorkerSettings"]
