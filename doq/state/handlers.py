"""One function per command: check it against the state, then change the state through
``lifecycle`` and return the result value.

A handler decides everything from the command and the state (docs/design.md, rule 4). ``now_ms`` is
the command's time, raised to the largest command time applied before (a new leader whose clock lags
must not move the state's clock back); ``expiry_ms`` is the time that decides redelivery, equal to
``now_ms`` except under the simulator's planted bug. A handler checks everything that can reject
before it changes anything, so a rejection leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from doq.commands import (
    DEFAULT_GROUP,
    Ack,
    AssignNodeNumber,
    CreateQueue,
    DeleteMessage,
    DeleteQueue,
    Dequeue,
    Enqueue,
    Nack,
    QueueType,
    ReserveIds,
    Strategy,
    Touch,
    UpdatePriority,
    UpdateQueue,
)
from doq.ids import id_unix_ms
from doq.state import fairtree, identity, lifecycle
from doq.state.batch import QueueState, WriteBatch
from doq.state.layout import DB_NAMES, MessageRecord, QueueRecord
from doq.state.results import (
    Acked,
    Dequeued,
    Enqueued,
    Message,
    MessageDeleted,
    Nacked,
    PriorityUpdated,
    QueueCreated,
    QueueDeleted,
    QueueSettings,
    QueueUpdated,
    RejectCode,
    Rejected,
    Result,
    Touched,
)

# A message ID counts toward the ID floor only if the time it carries is no later than this past
# the command's own time: IDs from our generator (or /ids) pass, while a client's own ID scheme
# (say, random 64-bit numbers) would otherwise push the floor out of reach of the generator.
ID_FLOOR_FUTURE_MS_MAX = 60_000
MS_PER_S = lifecycle.MS_PER_S
_PER_QUEUE_DBS = tuple(name for name in DB_NAMES if name not in ("meta", "queue_names"))


@attrs.frozen
class Clock:
    now_ms: int
    expiry_ms: int


def settings_of(record: QueueRecord) -> QueueSettings:
    return QueueSettings(record.strategy, record.max_unacked, record.ack_timeout_s)


def no_queue(name: str) -> Rejected:
    return Rejected(RejectCode.QUEUE_NOT_FOUND, f"queue not found: {name}")


def _no_message(queue: str, message_id: int, why: str = "not found") -> Rejected:
    return Rejected(RejectCode.MESSAGE_NOT_FOUND, f"message {message_id} {why} in queue {queue}")


# --- queues --------------------------------------------------------------------------------------


def create_queue(b: WriteBatch, cmd: CreateQueue, _clock: Clock) -> Result:
    existing = b.queue(cmd.name)
    if existing is not None:
        record = existing.record
        if record.type is not cmd.type:
            return Rejected(
                RejectCode.CONFLICT, f"queue {cmd.name} exists with type {record.type.value}"
            )
        if cmd.type is QueueType.FAIR and cmd.strategy not in (None, record.strategy):
            return Rejected(
                RejectCode.CONFLICT, f"queue {cmd.name} exists with strategy {record.strategy}"
            )
        return QueueCreated(cmd.name, record.type, settings_of(record), created=False)
    if cmd.type is QueueType.FAIR:
        strategy = cmd.strategy or Strategy.ROUND_ROBIN
    else:
        strategy = None  # a delayed queue orders by time; it has no strategy
    record = QueueRecord(
        b.allocate_queue_id(), cmd.name, cmd.type, strategy, cmd.max_unacked, cmd.ack_timeout_s
    )
    q = b.add_queue(record)
    if q.is_fair:
        fairtree.create_root(b, q)
    return QueueCreated(cmd.name, record.type, settings_of(record), created=True)


def update_queue(b: WriteBatch, cmd: UpdateQueue, _clock: Clock) -> Result:
    q = b.queue(cmd.name)
    if q is None:
        return no_queue(cmd.name)
    record = q.record
    if cmd.strategy is not None and cmd.strategy is not record.strategy:
        return Rejected(RejectCode.CONFLICT, f"the strategy of queue {cmd.name} cannot change")
    changes: dict[str, Any] = {}
    if cmd.max_unacked is not None:
        changes["max_unacked"] = cmd.max_unacked
    if cmd.ack_timeout_s is not None:
        changes["ack_timeout_s"] = cmd.ack_timeout_s
    q.record = attrs.evolve(record, **changes)
    q.record_dirty = True
    if q.is_fair and q.record.max_unacked != record.max_unacked:
        fairtree.reevaluate_leaves(b, q)
    return QueueUpdated(cmd.name, settings_of(q.record))


def delete_queue(b: WriteBatch, cmd: DeleteQueue, _clock: Clock) -> Result:
    q = b.queue(cmd.name)
    if q is None:
        return no_queue(cmd.name)
    removed = q.counters.ready + q.counters.unacked
    for name in _PER_QUEUE_DBS:
        _delete_prefix(b, getattr(b.dbs, name), q.prefix)
    b.forget_queue(q)
    return QueueDeleted(cmd.name, removed)


def _delete_prefix(b: WriteBatch, db: Any, prefix: bytes) -> None:
    cursor = b.cursor(db)
    if not cursor.set_range(prefix):
        return
    while cursor.key()[: len(prefix)] == prefix:
        if not cursor.delete():
            return  # that was the last key of the database


# --- messages in -------------------------------------------------------------------------------


def enqueue(b: WriteBatch, cmd: Enqueue, clock: Clock) -> Result:
    q = b.queue(cmd.queue)
    if q is None:
        return no_queue(cmd.queue)
    stored = []
    duplicate_at = []
    floor_limit = clock.now_ms + ID_FLOOR_FUTURE_MS_MAX
    for position, new in enumerate(cmd.messages):
        existing = lifecycle.load(b, q, new.id)
        if existing is not None:
            stored.append(lifecycle.as_message(new.id, existing))
            duplicate_at.append(position)
            continue
        group = new.group if q.is_fair else DEFAULT_GROUP
        leaf = fairtree.leaf_for_group(b, q, group) if q.is_fair else 0
        lifecycle.add_new(b, q, new.id, leaf, new.priority, group, new.content, new.metadata)
        q.counters.enqueued += 1
        if new.id > b.meta.id_floor and id_unix_ms(new.id) <= floor_limit:
            b.meta.id_floor = new.id
        stored.append(Message(new.id, group, new.priority, new.content, new.metadata))
    return Enqueued(tuple(stored), len(duplicate_at), tuple(duplicate_at))


# --- messages out ------------------------------------------------------------------------------


def dequeue(b: WriteBatch, cmd: Dequeue, clock: Clock) -> Result:
    q = b.queue(cmd.queue)
    if q is None:
        return no_queue(cmd.queue)
    lifecycle.expire(b, q, clock.expiry_ms)
    deadline_ms = clock.now_ms + q.record.ack_timeout_s * MS_PER_S
    delivered = lifecycle.deliver(b, q, cmd.count, clock.now_ms, deadline_ms, cmd.ack)
    if not delivered:
        return Rejected(RejectCode.QUEUE_EMPTY, f"Queue is empty: {cmd.queue}")
    q.counters.dequeued += len(delivered)
    if cmd.ack:
        q.counters.acked += len(delivered)
    return Dequeued(tuple(delivered))


def _stale(
    queue: str, message_id: int, in_flight: int, deliveries: int, delivery: int | None
) -> Rejected | None:
    """The rejection of an ack, nack or touch of a message that is not in flight, or not in the
    delivery its receipt names (``delivery``): one that expired (and may have been delivered again
    since) is refused as stale."""
    if delivery is not None and (not in_flight or deliveries != delivery):
        now = f"in delivery {deliveries}" if in_flight else "not in flight"
        return Rejected(
            RejectCode.STALE_RECEIPT,
            f"the receipt of message {message_id} names delivery {delivery}, which is over "
            f"(the message is {now})",
        )
    if not in_flight:
        return _no_message(queue, message_id, "is not in flight")
    return None


def _in_flight(
    b: WriteBatch, queue: str, message_id: int, clock: Clock, delivery: int | None
) -> tuple[QueueState, MessageRecord] | Rejected:
    """The queue and the in-flight message a command addresses, after expiry, or the rejection
    (``_stale``)."""
    found = _stored(b, queue, message_id, clock)
    if isinstance(found, Rejected):
        return found
    record = found[1]
    return _stale(queue, message_id, record.in_flight, record.deliveries, delivery) or found


def ack(b: WriteBatch, cmd: Ack, clock: Clock) -> Result:
    q = b.queue(cmd.queue)
    if q is None:
        return no_queue(cmd.queue)
    lifecycle.expire(b, q, clock.expiry_ms)
    return ack_item(b, q, cmd.id, cmd.delivery)


def ack_item(b: WriteBatch, q: QueueState, message_id: int, delivery: int | None) -> Result:
    """``Ack`` of one message of ``q``, whose expiry at the command's time is done: the body of
    ``Ack``, and of each item of ``AckMany`` (no command value per item). It reads the record's
    head only: an ack needs no body."""
    head = lifecycle.find_head(b, q, message_id)
    if head is None:
        return _no_message(q.record.name, message_id)
    stale_possible = head[0] == 0 or delivery is not None
    if stale_possible and (
        rejected := _stale(q.record.name, message_id, head[0], head[4], delivery)
    ):
        return rejected
    lifecycle.remove(b, q, message_id, head, positioned=True)
    q.counters.acked += 1
    return Acked(message_id)


def nack(b: WriteBatch, cmd: Nack, clock: Clock) -> Result:
    found = _in_flight(b, cmd.queue, cmd.id, clock, cmd.delivery)
    if isinstance(found, Rejected):
        return found
    q, record = found
    if cmd.priority:
        record.priority = cmd.priority
    if cmd.metadata is not None:
        record.metadata = cmd.metadata
    lifecycle.return_to_ready(b, q, cmd.id, record)
    q.counters.nacked += 1
    return Nacked(cmd.id, record.priority, record.metadata)


def touch(b: WriteBatch, cmd: Touch, clock: Clock) -> Result:
    return touch_item(b, cmd.queue, cmd.id, cmd.delivery, clock)


def touch_item(
    b: WriteBatch, queue: str, message_id: int, delivery: int | None, clock: Clock
) -> Result:
    """``Touch`` of one message, without a command value (as ``ack_item``)."""
    found = _in_flight(b, queue, message_id, clock, delivery)
    if isinstance(found, Rejected):
        return found
    q, record = found
    deadline_ms = clock.now_ms + q.record.ack_timeout_s * MS_PER_S
    lifecycle.move_deadline(b, q, message_id, record, deadline_ms)
    return Touched(message_id, deadline_ms)


def _stored(
    b: WriteBatch, queue: str, message_id: int, clock: Clock
) -> tuple[QueueState, MessageRecord] | Rejected:
    """The queue and the message (ready or in flight) a command addresses, after expiry."""
    q = b.queue(queue)
    if q is None:
        return no_queue(queue)
    lifecycle.expire(b, q, clock.expiry_ms)
    record = lifecycle.load(b, q, message_id)
    if record is None:
        return _no_message(queue, message_id)
    return q, record


def update_priority(b: WriteBatch, cmd: UpdatePriority, clock: Clock) -> Result:
    found = _stored(b, cmd.queue, cmd.id, clock)
    if isinstance(found, Rejected):
        return found
    q, record = found
    if record.in_flight:
        record.priority = cmd.priority  # the priority it will have when it comes back
        lifecycle.store(b, q, cmd.id, record)
    else:
        lifecycle.reprioritize_ready(b, q, cmd.id, record, cmd.priority)
        lifecycle.store(b, q, cmd.id, record)
    return PriorityUpdated(cmd.id, cmd.priority)


def delete_message(b: WriteBatch, cmd: DeleteMessage, clock: Clock) -> Result:
    found = _stored(b, cmd.queue, cmd.id, clock)
    if isinstance(found, Rejected):
        return found
    q, record = found
    lifecycle.remove(b, q, cmd.id, record.head())
    return MessageDeleted(cmd.id)


HANDLERS: dict[type, Callable[[WriteBatch, Any, Clock], Result]] = {
    CreateQueue: create_queue,
    UpdateQueue: update_queue,
    DeleteQueue: delete_queue,
    Enqueue: enqueue,
    Dequeue: dequeue,
    Ack: ack,
    Nack: nack,
    Touch: touch,
    UpdatePriority: update_priority,
    DeleteMessage: delete_message,
    AssignNodeNumber: identity.assign_node_number,
    ReserveIds: identity.reserve_ids,
}
