"""The commands of issue 8: the batch commands on in-flight messages (AckMany, NackMany,
TouchMany), and ExpireDue.

Batch commands: each item is the
single command at the command's time, so a batch leaves the same state and returns the same
results as the same single commands applied one after the other (tests/state/test_batch_ops.py).

A batch to an unknown queue is one rejection, as the single command's would be for every item;
otherwise every item gets its own result, a rejection of one item (not in flight, unknown) leaves
no trace and does not stop the others.
"""

from __future__ import annotations

from doq.commands import AckMany, ExpireDue, Nack, NackMany, TouchMany
from doq.state import handlers, lifecycle
from doq.state.batch import WriteBatch
from doq.state.results import ExpiredReturned, ManyResults, RejectCode, Rejected, Result


def _no_queue(b: WriteBatch, queue: str) -> Rejected | None:
    if b.queue(queue) is None:
        return Rejected(RejectCode.QUEUE_NOT_FOUND, f"queue not found: {queue}")
    return None


def ack_many(b: WriteBatch, cmd: AckMany, clock: handlers.Clock) -> Result:
    q = b.queue(cmd.queue)
    if q is None:
        return handlers.no_queue(cmd.queue)
    # Expiry once, before the first item: the items share the command's time, and an ack makes
    # no new deadline, so what the single commands would each expire first is already expired.
    lifecycle.expire(b, q, clock.expiry_ms)
    ack_item = handlers.ack_item
    results = tuple([ack_item(b, q, item.id, item.delivery) for item in cmd.items])
    return ManyResults(results)  # type: ignore[arg-type]


def nack_many(b: WriteBatch, cmd: NackMany, clock: handlers.Clock) -> Result:
    if missing := _no_queue(b, cmd.queue):
        return missing
    results = tuple(
        handlers.nack(
            b,
            Nack(cmd.ts_ms, cmd.queue, item.id, item.priority, item.metadata, item.delivery),
            clock,
        )
        for item in cmd.items
    )
    return ManyResults(results)  # type: ignore[arg-type]


def touch_many(b: WriteBatch, cmd: TouchMany, clock: handlers.Clock) -> Result:
    if missing := _no_queue(b, cmd.queue):
        return missing
    results = tuple(
        handlers.touch_item(b, cmd.queue, item.id, item.delivery, clock) for item in cmd.items
    )
    return ManyResults(results)  # type: ignore[arg-type]


def expire_due(b: WriteBatch, cmd: ExpireDue, clock: handlers.Clock) -> Result:
    """What every command on the queue does first (``lifecycle.expire``), alone: the leader
    proposes it when a deadline has passed, so the counts show the message ready again."""
    q = b.queue(cmd.queue)
    if q is None:
        return Rejected(RejectCode.QUEUE_NOT_FOUND, f"queue not found: {cmd.queue}")
    before = q.counters.expired
    lifecycle.expire(b, q, clock.expiry_ms)
    return ExpiredReturned(cmd.queue, q.counters.expired - before)


HANDLERS = {
    AckMany: ack_many,
    NackMany: nack_many,
    TouchMany: touch_many,
    ExpireDue: expire_due,
}
