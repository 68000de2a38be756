"""The read side: what the API serves between applies, each read in its own read transaction.

Reads change nothing and never see half of an apply batch (an LMDB read transaction is one
committed point). They report the state as of the last applied entry: in particular, a message
whose deadline has passed is still reported in flight until the next command on its queue returns
it (the state has no clock of its own; API.md's "current" reads go through ReadIndex first).
"""

from __future__ import annotations

from typing import Any

import lmdb

from doq.state.batch import Dbs, read_applied, read_meta
from doq.state.layout import (
    ACTIVE_KEY,
    DB_NAMES,
    DELAYED_KEY,
    FAIR_KEY,
    INFLIGHT_KEY,
    MESSAGE_KEY,
    NODE_KEY,
    PARENT_PREFIX,
    QUEUE_ID,
    U64,
    QueueRecord,
    name_digest,
    unpack_counters,
    unpack_message,
    unpack_node,
    unpack_queue,
)
from doq.state.results import (
    Message,
    QueueInfo,
    QueueSettings,
    RejectCode,
    Rejected,
    StoredMessage,
)


def _info(txn: lmdb.Transaction, dbs: Dbs, record: QueueRecord, prefix: bytes) -> QueueInfo:
    c = unpack_counters(txn.get(prefix, db=dbs.counters))
    settings = QueueSettings(record.strategy, record.max_unacked, record.ack_timeout_s)
    return QueueInfo(
        name=record.name,
        type=record.type,
        settings=settings,
        ready=c.ready,
        unacked=c.unacked,
        enqueued_total=c.enqueued,
        dequeued_total=c.dequeued,
        acked_total=c.acked,
        nacked_total=c.nacked,
        expired_total=c.expired,
    )


def queue_info(txn: lmdb.Transaction, dbs: Dbs, name: str) -> QueueInfo | None:
    prefix = txn.get(name_digest(name), db=dbs.queue_names)
    if prefix is None:
        return None
    return _info(txn, dbs, unpack_queue(txn.get(prefix, db=dbs.queues)), prefix)


def list_queues(txn: lmdb.Transaction, dbs: Dbs) -> list[QueueInfo]:
    """Every queue, sorted by name (by code point). Linear in the number of queues."""
    infos = [_info(txn, dbs, unpack_queue(value), key) for key, value in txn.cursor(dbs.queues)]
    return sorted(infos, key=lambda info: info.name)


def get_message(
    txn: lmdb.Transaction, dbs: Dbs, queue: str, message_id: int
) -> StoredMessage | Rejected:
    prefix = txn.get(name_digest(queue), db=dbs.queue_names)
    if prefix is None:
        return Rejected(RejectCode.QUEUE_NOT_FOUND, f"queue not found: {queue}")
    raw = txn.get(MESSAGE_KEY.pack(QUEUE_ID.unpack(prefix)[0], message_id), db=dbs.messages)
    if raw is None:
        return Rejected(
            RejectCode.MESSAGE_NOT_FOUND, f"message {message_id} not found in queue {queue}"
        )
    r = unpack_message(raw)
    message = Message(message_id, r.group, r.priority, r.content, r.metadata, r.deliveries)
    return StoredMessage(message, r.in_flight, r.deadline_ms if r.in_flight else None)


# --- the logical dump ----------------------------------------------------------------------------

_KEY_DECODERS: dict[str, Any] = {
    "queues": QUEUE_ID.unpack,
    "counters": QUEUE_ID.unpack,
    "messages": MESSAGE_KEY.unpack,
    "delayed": DELAYED_KEY.unpack,
    "fair": FAIR_KEY.unpack,
    "inflight": INFLIGHT_KEY.unpack,
    "nodes": NODE_KEY.unpack,
    "active": ACTIVE_KEY.unpack,
}
_VALUE_DECODERS: dict[str, Any] = {
    "queues": unpack_queue,
    "counters": unpack_counters,
    "messages": unpack_message,
    "nodes": unpack_node,
    "tree_children": lambda v: U64.unpack(v)[0],
    "group_leaves": lambda v: U64.unpack(v)[0],
}


def _tree_child_key(key: bytes) -> tuple[Any, ...]:
    return (*PARENT_PREFIX.unpack_from(key), key[PARENT_PREFIX.size :].hex())


def logical_dump(txn: lmdb.Transaction, dbs: Dbs) -> dict[str, Any]:
    """Everything the state holds, decoded, in key order: two replicas that applied the same log
    give equal dumps (the determinism tests compare them)."""
    meta = read_meta(txn, dbs)
    dump: dict[str, Any] = {
        "applied": read_applied(txn, dbs),
        "clock_ms": meta.clock_ms,
        "id_floor": meta.id_floor,
        "next_queue_id": meta.next_queue_id,
    }
    for name in DB_NAMES:
        if name == "meta":
            continue
        decode_key = _KEY_DECODERS.get(name, lambda k: k.hex())
        if name == "tree_children":
            decode_key = _tree_child_key
        decode_value = _VALUE_DECODERS.get(name, lambda v: v.hex())
        dump[name] = [
            (decode_key(key), decode_value(value)) for key, value in txn.cursor(getattr(dbs, name))
        ]
    return dump
