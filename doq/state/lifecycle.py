"""A message's moves between ready and in flight, with every index and count that follows it.

A message is ready (in the ``delayed`` or ``fair`` index, by priority then ID) or in flight (in the
``inflight`` index, by deadline then ID); its record in ``messages`` says which. Each function here
keeps the record, the indexes, the queue's counters and the fair tree in step, so the command
handlers only decide *what* happens.

The two moves every consumed message makes, a delivery and an ack, touch only the record's
fixed-width head (doq/state/layout.py): ``deliver_next`` rewrites the head in front of the body's
unchanged bytes and decodes the body once, for the answer; an ack reads the head alone
(``load_head``) and deletes. The other moves (nack, touch, expiry, priority changes) go through
the whole ``MessageRecord``.
"""

from __future__ import annotations

from doq.state import fairtree
from doq.state.batch import NO_DEADLINE_MS, QueueState, WriteBatch
from doq.state.layout import (
    DELAYED_KEY,
    FAIR_KEY,
    FAIR_LEAF_PREFIX,
    INFLIGHT_KEY,
    MESSAGE_BODY_DECODER,
    MESSAGE_HEAD,
    MESSAGE_HEAD_BYTES,
    MESSAGE_KEY,
    QUEUE_ID,
    MessageHead,
    MessageRecord,
    pack_message,
    unpack_message,
)
from doq.state.results import Message

_QUEUE_PREFIX_BYTES = QUEUE_ID.size
_DELAYED_PREFIX_BYTES = QUEUE_ID.size
_FAIR_LEAF_PREFIX_BYTES = FAIR_LEAF_PREFIX.size
MS_PER_S = 1000


def as_message(message_id: int, record: MessageRecord) -> Message:
    return Message(
        message_id,
        record.group,
        record.priority,
        record.content,
        record.metadata,
        record.deliveries,
    )


def load(b: WriteBatch, q: QueueState, message_id: int) -> MessageRecord | None:
    raw = b.txn.get(MESSAGE_KEY.pack(q.queue_id, message_id), db=b.dbs.messages)
    return None if raw is None else unpack_message(raw)


def load_head(b: WriteBatch, q: QueueState, message_id: int) -> MessageHead | None:
    """The record's head only (in flight, leaf, priority, deadline, deliveries): what an ack
    needs, without decoding the body."""
    raw = b.txn.get(MESSAGE_KEY.pack(q.queue_id, message_id), db=b.dbs.messages)
    return None if raw is None else MESSAGE_HEAD.unpack_from(raw)  # type: ignore[return-value]


def store(b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord) -> None:
    b.txn.put(MESSAGE_KEY.pack(q.queue_id, message_id), pack_message(record), db=b.dbs.messages)


def _ready_key(q: QueueState, message_id: int, record: MessageRecord) -> bytes:
    if q.is_fair:
        return FAIR_KEY.pack(q.queue_id, record.leaf, record.priority, message_id)
    return DELAYED_KEY.pack(q.queue_id, record.priority, message_id)


def _inflight_key(q: QueueState, message_id: int, record: MessageRecord) -> bytes:
    return INFLIGHT_KEY.pack(q.queue_id, record.deadline_ms, message_id)


# --- ready <-> in flight -------------------------------------------------------------------------


def add_ready(b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord) -> None:
    """A new message (its record is stored by the caller) joins the ready index."""
    assert not record.in_flight
    db = b.dbs.fair if q.is_fair else b.dbs.delayed
    b.txn.put(_ready_key(q, message_id, record), b"", db=db)
    q.counters.ready += 1
    if q.is_fair:
        fairtree.leaf_changed(b, q, record.leaf, 1, 0)


def reprioritize_ready(
    b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord, priority: int
) -> None:
    db = b.dbs.fair if q.is_fair else b.dbs.delayed
    deleted = b.txn.delete(_ready_key(q, message_id, record), db=db)
    assert deleted, ("ready message missing from its index", message_id)
    record.priority = priority
    b.txn.put(_ready_key(q, message_id, record), b"", db=db)


def deliver_next(
    b: WriteBatch, q: QueueState, now_ms: int, deadline_ms: int, ack: bool
) -> Message | None:
    """Take the next deliverable message and deliver it: in flight until ``deadline_ms``, or, for
    an ``ack=true`` dequeue, gone. None when nothing can be delivered now."""
    message_id = take_next(b, q, now_ms)
    if message_id is None:
        return None
    txn, messages = b.txn, b.dbs.messages
    key = MESSAGE_KEY.pack(q.queue_id, message_id)
    raw = txn.get(key, db=messages)
    in_flight, leaf, priority, _, deliveries = MESSAGE_HEAD.unpack_from(raw)
    assert not in_flight, message_id
    body = raw[MESSAGE_HEAD_BYTES:]
    group, content, metadata = MESSAGE_BODY_DECODER.decode(body)
    deliveries += 1  # this delivery's number (an acked one is named in the answer, not stored)
    counters = q.counters
    counters.ready -= 1
    if ack:
        txn.delete(key, db=messages)
        if q.is_fair:
            fairtree.leaf_changed(b, q, leaf, -1, 0)
            fairtree.forget_if_empty(b, q, leaf)
    else:
        txn.put(
            key, MESSAGE_HEAD.pack(1, leaf, priority, deadline_ms, deliveries) + body, db=messages
        )
        txn.put(INFLIGHT_KEY.pack(q.queue_id, deadline_ms, message_id), b"", db=b.dbs.inflight)
        _lower_deadline_floor(q, deadline_ms)
        counters.unacked += 1
        if q.is_fair:
            fairtree.leaf_changed(b, q, leaf, -1, 1)
    return Message(message_id, group, priority, content, metadata, deliveries)


def return_to_ready(b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord) -> None:
    """In flight back to ready (nack, expiry), with whatever priority the record now holds."""
    assert record.in_flight
    deleted = b.txn.delete(_inflight_key(q, message_id, record), db=b.dbs.inflight)
    assert deleted, ("in-flight message missing from its index", message_id)
    record.in_flight, record.deadline_ms = False, 0
    store(b, q, message_id, record)
    db = b.dbs.fair if q.is_fair else b.dbs.delayed
    b.txn.put(_ready_key(q, message_id, record), b"", db=db)
    q.counters.unacked -= 1
    q.counters.ready += 1
    if q.is_fair:
        fairtree.leaf_changed(b, q, record.leaf, 1, -1)


def move_deadline(
    b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord, deadline_ms: int
) -> None:
    assert record.in_flight
    deleted = b.txn.delete(_inflight_key(q, message_id, record), db=b.dbs.inflight)
    assert deleted, ("in-flight message missing from its index", message_id)
    record.deadline_ms = deadline_ms
    b.txn.put(_inflight_key(q, message_id, record), b"", db=b.dbs.inflight)
    store(b, q, message_id, record)
    _lower_deadline_floor(q, deadline_ms)


def remove(b: WriteBatch, q: QueueState, message_id: int, head: MessageHead) -> None:
    """Delete a stored message, ready or in flight (ack, delete), given its record's head."""
    in_flight, leaf, priority, deadline_ms, _ = head
    txn = b.txn
    if in_flight:
        key = INFLIGHT_KEY.pack(q.queue_id, deadline_ms, message_id)
        deleted = txn.delete(key, db=b.dbs.inflight)
        q.counters.unacked -= 1
        ready_delta, inflight_delta = 0, -1
    else:
        if q.is_fair:
            key, db = FAIR_KEY.pack(q.queue_id, leaf, priority, message_id), b.dbs.fair
        else:
            key, db = DELAYED_KEY.pack(q.queue_id, priority, message_id), b.dbs.delayed
        deleted = txn.delete(key, db=db)
        q.counters.ready -= 1
        ready_delta, inflight_delta = -1, 0
    assert deleted, ("message missing from its index", message_id)
    txn.delete(MESSAGE_KEY.pack(q.queue_id, message_id), db=b.dbs.messages)
    if q.is_fair:
        fairtree.leaf_changed(b, q, leaf, ready_delta, inflight_delta)
        fairtree.forget_if_empty(b, q, leaf)


# --- choosing ------------------------------------------------------------------------------------


def expire(b: WriteBatch, q: QueueState, now_ms: int) -> None:
    """Every in-flight message whose deadline has come (deadline <= now) becomes ready again, in
    deadline order."""
    if q.deadline_floor_ms is not None and now_ms < q.deadline_floor_ms:
        return
    cursor = b.cursor(b.dbs.inflight)
    due = []
    floor_ms = NO_DEADLINE_MS
    if cursor.set_range(q.prefix):
        for key in cursor.iternext(keys=True, values=False):
            queue_id, deadline_ms, message_id = INFLIGHT_KEY.unpack(key)
            if queue_id != q.queue_id:
                break
            if deadline_ms > now_ms:
                floor_ms = deadline_ms
                break
            due.append(message_id)
    for message_id in due:
        record = load(b, q, message_id)
        assert record is not None and record.in_flight, message_id
        return_to_ready(b, q, message_id, record)
        q.counters.expired += 1
    q.deadline_floor_ms = floor_ms


def _lower_deadline_floor(q: QueueState, deadline_ms: int) -> None:
    if q.deadline_floor_ms is not None and deadline_ms < q.deadline_floor_ms:
        q.deadline_floor_ms = deadline_ms


def take_next(b: WriteBatch, q: QueueState, now_ms: int) -> int | None:
    """Remove the next deliverable message from the ready index and return its ID (None when
    nothing can be delivered now)."""
    if q.is_fair:
        leaf = fairtree.next_leaf(b, q)
        if leaf is None:
            return None
        cursor = b.cursor(b.dbs.fair)
        prefix = FAIR_LEAF_PREFIX.pack(q.queue_id, leaf)
        found = cursor.set_range(prefix)
        assert found and cursor.key()[:_FAIR_LEAF_PREFIX_BYTES] == prefix, ("empty leaf", leaf)
        message_id = FAIR_KEY.unpack(cursor.key())[3]
    else:
        cursor = b.cursor(b.dbs.delayed)
        if not cursor.set_range(q.prefix) or cursor.key()[:_DELAYED_PREFIX_BYTES] != q.prefix:
            return None
        _, priority, message_id = DELAYED_KEY.unpack(cursor.key())
        if priority > now_ms // MS_PER_S:
            return None  # the head is not due yet, so nothing behind it is either
    cursor.delete()
    return message_id
