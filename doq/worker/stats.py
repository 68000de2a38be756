"""What a worker has done: counts and handler latency for its log lines, its progress line and
its Prometheus metrics (docs/client.md, "Worker")."""

from __future__ import annotations

import attrs


@attrs.define
class WorkerStats:
    done: int = 0
    failed: int = 0
    parked: int = 0
    abandoned: int = 0  # still running when the grace period ended: nacked
    heartbeats: int = 0
    lease_lost: int = 0  # an ack, nack or touch found the delivery over
    settle_failed: int = 0  # an ack, nack or touch that got no answer within the retries
    settle_requests: int = 0  # batch requests (or bundles) that carried the acks, nacks, touches
    handler_s_total: float = 0.0

    def succeeded(self, elapsed_s: float) -> None:
        self.done += 1
        self.handler_s_total += elapsed_s

    def failed_after(self, elapsed_s: float) -> None:
        self.failed += 1
        self.handler_s_total += elapsed_s

    def as_dict(self) -> dict[str, int | float]:
        return attrs.asdict(self)

    def progress_line(self, elapsed_s: float) -> str:
        handled = self.done + self.failed
        mean_ms = 1000 * self.handler_s_total / handled if handled else 0.0
        rate = handled / elapsed_s if elapsed_s > 0 else 0.0
        return (
            f"done {self.done}  failed {self.failed}  parked {self.parked}  "
            f"{rate:.1f} msg/s  handler {mean_ms:.1f} ms mean"
        )
