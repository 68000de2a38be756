"""When a queue may next have a message to deliver without any new command: the earliest of its
in-flight deadlines (the message comes back then) and, on a delayed queue, its head's due time.

A read of the state (no clock: the caller compares with its own time). The leader uses it to wake
a waiting dequeue (doq/longpoll.py) exactly when a message can come due, and to know when expired
messages must be returned to ready (doq/service.py), instead of polling.
"""

from __future__ import annotations

import lmdb

from doq.commands import QueueType
from doq.state.batch import Dbs
from doq.state.layout import DELAYED_KEY, INFLIGHT_KEY, name_digest, unpack_queue

MS_PER_S = 1000


def next_due_ms(txn: lmdb.Transaction, dbs: Dbs, name: str) -> int | None:
    """The earliest time (Unix ms) something of queue ``name`` comes due, or None when nothing
    will without a new command (or the queue does not exist)."""
    prefix = txn.get(name_digest(name), db=dbs.queue_names)
    if prefix is None:
        return None
    due = [deadline] if (deadline := earliest_deadline_ms(txn, dbs, prefix)) is not None else []
    record = unpack_queue(txn.get(prefix, db=dbs.queues))
    if record.type is QueueType.DELAYED:
        cursor = txn.cursor(dbs.delayed)
        if cursor.set_range(prefix) and cursor.key()[: len(prefix)] == prefix:
            _, priority, _ = DELAYED_KEY.unpack(cursor.key())
            due.append(priority * MS_PER_S)
    return min(due) if due else None


def earliest_deadlines_ms(txn: lmdb.Transaction, dbs: Dbs) -> dict[str, int]:
    """Each queue that has messages in flight, and its earliest deadline (Unix ms)."""
    found = {}
    cursor = txn.cursor(dbs.queues)
    for prefix, raw in cursor.iternext():
        deadline = earliest_deadline_ms(txn, dbs, prefix)
        if deadline is not None:
            found[unpack_queue(raw).name] = deadline
    return found


def earliest_deadline_ms(txn: lmdb.Transaction, dbs: Dbs, prefix: bytes) -> int | None:
    """The earliest in-flight deadline of the queue whose key prefix is ``prefix``."""
    cursor = txn.cursor(dbs.inflight)
    if cursor.set_range(prefix) and cursor.key()[: len(prefix)] == prefix:
        return INFLIGHT_KEY.unpack(cursor.key())[1]
    return None
