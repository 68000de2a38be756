"""A message's moves between ready and in flight, with every index and count that follows it.

A message is ready (in the ``delayed`` or ``fair`` index, by priority then ID) or in flight (in the
``inflight`` index, by deadline then ID); its record in ``messages`` says which. Each function here
keeps the record, the indexes, the queue's counters and the fair tree in step, so the command
handlers only decide *what* happens.

The two moves every consumed message makes, a delivery and an ack, touch only the record's
fixed-width head (doq/state/layout.py): ``deliver`` rewrites the head in front of the body's
unchanged bytes and decodes the body once, for the answer; an ack reads the head alone
(``find_head``) and deletes the record where it found it. The other moves (nack, touch, expiry,
priority changes) go through the whole ``MessageRecord``.
"""

from __future__ import annotations

import lmdb

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
    pack_message_body,
    unpack_message,
)
from doq.state.results import Message

_QUEUE_PREFIX_BYTES = QUEUE_ID.size
_DELAYED_PREFIX_BYTES = QUEUE_ID.size
_FAIR_LEAF_PREFIX_BYTES = FAIR_LEAF_PREFIX.size
_FAIR_KEY_UNPACK = FAIR_KEY.unpack
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


def find_head(b: WriteBatch, q: QueueState, message_id: int) -> MessageHead | None:
    """The record's head only (in flight, leaf, priority, deadline, deliveries): what an ack
    needs, without decoding the body. The batch's cursor on ``messages`` is left on the record,
    so that ``remove(..., positioned=True)`` deletes it there without searching again."""
    cursor = b.cursor(b.dbs.messages)
    if not cursor.set_key(MESSAGE_KEY.pack(q.queue_id, message_id)):
        return None
    return MESSAGE_HEAD.unpack_from(cursor.value())  # type: ignore[return-value]


def store(b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord) -> None:
    b.txn.put(MESSAGE_KEY.pack(q.queue_id, message_id), pack_message(record), db=b.dbs.messages)


def _ready_key(q: QueueState, message_id: int, record: MessageRecord) -> bytes:
    if q.is_fair:
        return FAIR_KEY.pack(q.queue_id, record.leaf, record.priority, message_id)
    return DELAYED_KEY.pack(q.queue_id, record.priority, message_id)


def _inflight_key(q: QueueState, message_id: int, record: MessageRecord) -> bytes:
    return INFLIGHT_KEY.pack(q.queue_id, record.deadline_ms, message_id)


# --- ready <-> in flight -------------------------------------------------------------------------


def add_new(
    b: WriteBatch,
    q: QueueState,
    message_id: int,
    leaf: int,
    priority: int,
    group: str,
    content: str,
    metadata: dict[str, str] | None,
) -> None:
    """Store a new message (the caller checked that its ID is free) and add it to the ready
    index: its record is written straight from the fields, without a ``MessageRecord``."""
    queue_id = q.queue_id
    record = MESSAGE_HEAD.pack(0, leaf, priority, 0, 0) + pack_message_body(
        group, content, metadata
    )
    b.txn.put(MESSAGE_KEY.pack(queue_id, message_id), record, db=b.dbs.messages)
    if q.is_fair:
        b.txn.put(FAIR_KEY.pack(queue_id, leaf, priority, message_id), b"", db=b.dbs.fair)
        fairtree.leaf_changed(b, q, leaf, 1, 0)
    else:
        b.txn.put(DELAYED_KEY.pack(queue_id, priority, message_id), b"", db=b.dbs.delayed)
    q.counters.ready += 1


def reprioritize_ready(
    b: WriteBatch, q: QueueState, message_id: int, record: MessageRecord, priority: int
) -> None:
    db = b.dbs.fair if q.is_fair else b.dbs.delayed
    deleted = b.txn.delete(_ready_key(q, message_id, record), db=db)
    assert deleted, ("ready message missing from its index", message_id)
    record.priority = priority
    b.txn.put(_ready_key(q, message_id, record), b"", db=db)


def deliver(
    b: WriteBatch, q: QueueState, count: int, now_ms: int, deadline_ms: int, ack: bool
) -> list[Message]:
    """Take up to ``count`` deliverable messages, one turn at a time, and deliver each: in flight
    until ``deadline_ms``, or, for an ``ack=true`` dequeue, gone. Fewer (none) when fewer can be
    delivered now. One loop with everything it touches bound locally: this is the cost of every
    consumed message."""
    txn, messages, inflight = b.txn, b.dbs.messages, b.dbs.inflight
    fair = q.is_fair
    queue_id = q.queue_id
    cursor = b.cursor(b.dbs.fair if fair else b.dbs.delayed)
    get, put, delete = txn.get, txn.put, txn.delete
    pack_key, unpack_head, pack_head = MESSAGE_KEY.pack, MESSAGE_HEAD.unpack_from, MESSAGE_HEAD.pack
    decode_body, leaf_changed = MESSAGE_BODY_DECODER.decode, fairtree.leaf_changed
    delivered: list[Message] = []
    for _ in range(count):
        message_id = _take_next_fair(b, q, cursor) if fair else _take_next_due(q, cursor, now_ms)
        if message_id is None:
            break
        key = pack_key(queue_id, message_id)
        raw = get(key, db=messages)
        in_flight, leaf, priority, _, deliveries = unpack_head(raw)
        assert not in_flight, message_id
        body = raw[MESSAGE_HEAD_BYTES:]
        group, content, metadata = decode_body(body)
        deliveries += 1  # this delivery's number (an acked one is named in the answer only)
        if ack:
            delete(key, db=messages)
            if fair:
                leaf_changed(b, q, leaf, -1, 0)
                fairtree.forget_if_empty(b, q, leaf)
        else:
            put(key, pack_head(1, leaf, priority, deadline_ms, deliveries) + body, db=messages)
            put(INFLIGHT_KEY.pack(queue_id, deadline_ms, message_id), b"", db=inflight)
            if fair:
                leaf_changed(b, q, leaf, -1, 1)
        delivered.append(Message(message_id, group, priority, content, metadata, deliveries))
    q.counters.ready -= len(delivered)
    if delivered and not ack:
        q.counters.unacked += len(delivered)
        _lower_deadline_floor(q, deadline_ms)
    return delivered


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


def remove(
    b: WriteBatch, q: QueueState, message_id: int, head: MessageHead, positioned: bool = False
) -> None:
    """Delete a stored message, ready or in flight (ack, delete), given its record's head;
    ``positioned``: ``find_head`` just left the messages cursor on its record."""
    in_flight, leaf, priority, deadline_ms, _ = head
    txn, dbs, queue_id, counters = b.txn, b.dbs, q.queue_id, q.counters
    if in_flight:
        deleted = txn.delete(INFLIGHT_KEY.pack(queue_id, deadline_ms, message_id), db=dbs.inflight)
        counters.unacked -= 1
        ready_delta, inflight_delta = 0, -1
    else:
        if q.is_fair:
            key, db = FAIR_KEY.pack(queue_id, leaf, priority, message_id), dbs.fair
        else:
            key, db = DELAYED_KEY.pack(queue_id, priority, message_id), dbs.delayed
        deleted = txn.delete(key, db=db)
        counters.ready -= 1
        ready_delta, inflight_delta = -1, 0
    assert deleted, ("message missing from its index", message_id)
    if positioned:
        b.cursor(dbs.messages).delete()
    else:
        txn.delete(MESSAGE_KEY.pack(queue_id, message_id), db=dbs.messages)
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


def _take_next_fair(b: WriteBatch, q: QueueState, cursor: lmdb.Cursor) -> int | None:
    """Remove the next deliverable message of a fair queue from its ready index (``cursor`` is
    on it) and return its ID: the first of the group whose turn it is. None when no group can
    deliver now."""
    leaf = fairtree.next_leaf(b, q)
    if leaf is None:
        return None
    prefix = FAIR_LEAF_PREFIX.pack(q.queue_id, leaf)
    found = cursor.set_range(prefix)
    key = cursor.key()
    assert found and key[:_FAIR_LEAF_PREFIX_BYTES] == prefix, ("empty leaf", leaf)
    cursor.delete()
    return _FAIR_KEY_UNPACK(key)[3]


def _take_next_due(q: QueueState, cursor: lmdb.Cursor, now_ms: int) -> int | None:
    """As ``_take_next_fair`` for a delayed queue: its head, if due."""
    if not cursor.set_range(q.prefix):
        return None
    key = cursor.key()
    if key[:_DELAYED_PREFIX_BYTES] != q.prefix:
        return None
    _, priority, message_id = DELAYED_KEY.unpack(key)
    if priority > now_ms // MS_PER_S:
        return None  # the head is not due yet, so nothing behind it is either
    cursor.delete()
    return message_id
