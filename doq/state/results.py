"""What applying a command returns, and what the read side hands to the API.

Every value here is frozen and a function of the log alone, so each replica computes the same
result for the same entry (the node that answers the client is whichever applied it). A command the
state refuses returns ``Rejected`` with a code that the API layer maps to a status (API.md):
QUEUE_NOT_FOUND and MESSAGE_NOT_FOUND to 404, CONFLICT and STALE_RECEIPT to 409, QUEUE_EMPTY to
400 "Queue is empty", INVALID to 422 (only a malformed entry gets it: the API validates requests
before proposing).
"""

from __future__ import annotations

import enum

import attrs

from doq.commands import QueueType, Strategy


class RejectCode(enum.StrEnum):
    QUEUE_NOT_FOUND = "queue_not_found"
    MESSAGE_NOT_FOUND = "message_not_found"  # unknown ID, or not in flight for ack/nack/touch
    CONFLICT = "conflict"  # another queue type, or a strategy change
    QUEUE_EMPTY = "queue_empty"  # nothing deliverable now (none ready, not yet due, or capped)
    STALE_RECEIPT = "stale_receipt"  # the receipt names a delivery that is over
    INVALID = "invalid"  # the entry does not decode to a valid command


@attrs.frozen
class Rejected:
    code: RejectCode
    detail: str


@attrs.frozen
class QueueSettings:
    """Resolved settings. ``strategy`` is None on a delayed queue."""

    strategy: Strategy | None
    max_unacked: int
    ack_timeout_s: int


@attrs.frozen
class Message:
    """``deliveries``: how many times it was dequeued (this delivery's number, in a Dequeued)."""

    id: int
    group: str
    priority: int
    content: str
    metadata: dict[str, str] | None
    deliveries: int = 0


@attrs.frozen
class QueueCreated:
    """``created`` is False when the queue already existed (nothing changed)."""

    name: str
    type: QueueType
    settings: QueueSettings
    created: bool


@attrs.frozen
class QueueUpdated:
    name: str
    settings: QueueSettings


@attrs.frozen
class QueueDeleted:
    name: str
    messages_removed: int


@attrs.frozen
class Enqueued:
    """The stored messages, in the command's order. A message whose ID the queue already held is
    the stored one, unchanged; ``duplicates`` counts those and ``duplicate_at`` gives their
    positions in the command (a batch answers each item as new or as the stored message)."""

    messages: tuple[Message, ...]
    duplicates: int
    duplicate_at: tuple[int, ...] = ()


@attrs.frozen
class Dequeued:
    """One or more messages (never none: an empty queue is ``Rejected(QUEUE_EMPTY)``)."""

    messages: tuple[Message, ...]


@attrs.frozen
class Acked:
    id: int


@attrs.frozen
class Nacked:
    id: int
    priority: int
    metadata: dict[str, str] | None


@attrs.frozen
class Touched:
    id: int
    deadline_ms: int


@attrs.frozen
class ManyResults:
    """One result per item of an AckMany, NackMany or TouchMany, in order: what the single
    command would have returned (Acked, Nacked, Touched or its Rejected)."""

    results: tuple[Acked | Nacked | Touched | Rejected, ...]


@attrs.frozen
class ExpiredReturned:
    """How many in-flight messages an ExpireDue returned to ready."""

    queue: str
    returned: int


@attrs.frozen
class PriorityUpdated:
    id: int
    priority: int


@attrs.frozen
class MessageDeleted:
    id: int


@attrs.frozen
class StateRestored:
    """The snapshot's own (index, term): where the restored state came from."""

    snapshot_index: int
    snapshot_term: int


@attrs.frozen
class NodeNumberAssigned:
    """``number`` is the node's, whether assigned by this command or before."""

    node_id: str
    number: int


@attrs.frozen
class IdsReserved:
    """``id_floor`` is the state's ID floor after the reservation (at least what was asked)."""

    id_floor: int


Result = (
    Rejected
    | QueueCreated
    | QueueUpdated
    | QueueDeleted
    | Enqueued
    | Dequeued
    | Acked
    | Nacked
    | Touched
    | ManyResults
    | ExpiredReturned
    | PriorityUpdated
    | MessageDeleted
    | StateRestored
    | NodeNumberAssigned
    | IdsReserved
)


# --- the read side -------------------------------------------------------------------------------


@attrs.frozen
class QueueInfo:
    """A queue's configuration and counts. ``ready`` counts messages not in flight (including
    those of a delayed queue whose time has not come), ``unacked`` those in flight. The ``*_total``
    counters only ever grow (until the queue is deleted); the API derives its per-second rates by
    sampling them, so the replicated state holds nothing that depends on a node's clock."""

    name: str
    type: QueueType
    settings: QueueSettings
    ready: int
    unacked: int
    enqueued_total: int
    dequeued_total: int
    acked_total: int
    nacked_total: int
    expired_total: int

    @property
    def total(self) -> int:
        return self.ready + self.unacked


@attrs.frozen
class StoredMessage:
    """A message as stored: ``deadline_ms`` is set while it is in flight."""

    message: Message
    in_flight: bool
    deadline_ms: int | None
