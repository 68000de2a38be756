"""What a consumer holds: a delivered message bound to its client, so ``msg.ack()``,
``msg.nack(delay=…)`` and ``msg.touch()`` carry the delivery's receipt without the caller
passing it. The same class serves both clients: with ``AsyncClient`` its methods return
awaitables (``await msg.ack()``).
"""

from __future__ import annotations

from typing import Any

import attrs

from doq.client.calls import DEQUEUE_COUNT_MAX
from doq.client.models import Message


def consume_batch_size(prefetch: int) -> int:
    if not 1 <= prefetch <= DEQUEUE_COUNT_MAX:
        raise ValueError(f"prefetch must be 1..{DEQUEUE_COUNT_MAX}, not {prefetch}")
    return prefetch


@attrs.frozen
class Delivery:
    """A message taken from ``queue`` and in flight until acked, nacked or its deadline passes."""

    queue: str
    message: Message
    client: Any = attrs.field(eq=False, repr=False)

    @classmethod
    def of(cls, client: Any, queue: str, message: Message) -> Delivery:
        return cls(queue, message, client)

    @property
    def id(self) -> int:
        return self.message.id

    @property
    def content(self) -> str:
        return self.message.content

    @property
    def priority(self) -> int:
        return self.message.priority

    @property
    def group(self) -> str:
        return self.message.group

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.message.metadata or {})

    @property
    def receipt(self) -> str | None:
        return self.message.receipt

    def ack(self) -> Any:
        return self.client.ack(self.queue, self.id, receipt=self.receipt)

    def touch(self) -> Any:
        return self.client.touch(self.queue, self.id, receipt=self.receipt)

    def nack(
        self,
        *,
        delay: float | None = None,
        priority: int = 0,
        metadata: dict[str, str] | None = None,
    ) -> Any:
        """Give it back now (``priority`` 0 keeps its own), or on a delayed queue ``delay``
        seconds from now; ``metadata`` replaces the message's when given."""
        return self.client.nack(
            self.queue,
            self.id,
            priority=priority,
            delay=delay,
            metadata=metadata,
            receipt=self.receipt,
        )
