"""Optional caps on how many queues a cluster holds and how many messages one queue holds, so
that a client cannot grow the state without bound (docs/api.md, "429 Too Many Requests").

The leader checks them against its own replica just before it proposes a create or an enqueue
(doq/service.py); over a cap the request is refused with 429 and nothing is written. They are
admission limits, not state-machine rules: writes proposed concurrently may pass the check
together and overshoot a cap by at most what is in flight, and a cap lowered below the current
count refuses new writes without removing anything. 0 means no cap (the default).
"""

from __future__ import annotations

import attrs

from doq.state.results import QueueInfo


@attrs.frozen
class Quotas:
    queues_max: int = 0
    messages_per_queue_max: int = 0

    def __attrs_post_init__(self) -> None:
        if self.queues_max < 0 or self.messages_per_queue_max < 0:
            raise ValueError("a quota is 0 (none) or positive")

    def queue_refusal(self, queues_now: int) -> str | None:
        """Why one more queue is refused, or None."""
        if self.queues_max and queues_now >= self.queues_max:
            return f"the cluster holds {queues_now} queues, its limit (queue.queues_max)"
        return None

    def messages_refusal(self, info: QueueInfo | None, adding: int) -> str | None:
        """Why ``adding`` more messages to the queue ``info`` describes are refused, or None
        (an unknown queue is the state machine's to refuse)."""
        if not self.messages_per_queue_max or info is None:
            return None
        held = info.ready + info.unacked
        if held + adding > self.messages_per_queue_max:
            return (
                f"queue {info.name} holds {held} messages; {adding} more would pass its limit "
                f"of {self.messages_per_queue_max} (queue.messages_per_queue_max)"
            )
        return None
