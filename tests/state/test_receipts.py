"""Delivery receipts in the state machine: each delivery of a message has its number; an
ack, nack or touch that names a delivery which is over is refused and changes nothing; without
one the Go server's behaviour holds; the number survives a snapshot and a restart."""

from __future__ import annotations

import msgspec

from doq.commands import Ack, CreateQueue, Dequeue, Enqueue, Nack, NewMessage, QueueType, Touch
from doq.state.layout import MessageRecord, unpack_message
from doq.state.machine import QueueStateMachine
from doq.state.results import Acked, Dequeued, RejectCode, Rejected

from .helpers import Log, open_machine, run_one

T = 1_750_000_000_000
TIMEOUT_S = 5


def redelivered(sm: QueueStateMachine, log: Log) -> None:
    """Message 1, delivered (delivery 1), expired, delivered again (delivery 2)."""
    run_one(sm, log, CreateQueue(T, "q", QueueType.DELAYED, TIMEOUT_S))
    run_one(sm, log, Enqueue(T, "q", (NewMessage(1, 0, "x"),)))
    first = run_one(sm, log, Dequeue(T, "q"))
    assert isinstance(first, Dequeued) and first.messages[0].deliveries == 1
    second = run_one(sm, log, Dequeue(T + TIMEOUT_S * 1000, "q"))
    assert isinstance(second, Dequeued) and second.messages[0].deliveries == 2


def test_a_stale_receipt_is_refused_and_changes_nothing(machine, log):
    redelivered(machine, log)
    now = T + TIMEOUT_S * 1000 + 1
    before = machine.logical_dump()
    for stale in (Ack(now, "q", 1, 1), Nack(now, "q", 1, 5, None, 1), Touch(now, "q", 1, 1)):
        result = run_one(machine, log, stale)
        assert isinstance(result, Rejected) and result.code is RejectCode.STALE_RECEIPT, stale
    after = machine.logical_dump()
    for dump in (before, after):  # every command moves these, a rejected one too
        del dump["applied"], dump["clock_ms"]
    assert after == before
    assert run_one(machine, log, Ack(now, "q", 1, 2)) == Acked(1)


def test_without_a_receipt_any_holder_may_ack_as_the_go_server_allowed(machine, log):
    redelivered(machine, log)
    assert run_one(machine, log, Ack(T + TIMEOUT_S * 1000 + 1, "q", 1)) == Acked(1)


def test_a_receipt_of_an_expired_delivery_is_stale_even_before_redelivery(machine, log):
    run_one(machine, log, CreateQueue(T, "q", QueueType.DELAYED, TIMEOUT_S))
    run_one(machine, log, Enqueue(T, "q", (NewMessage(1, 0, "x"),)))
    run_one(machine, log, Dequeue(T, "q"))
    result = run_one(machine, log, Touch(T + TIMEOUT_S * 1000, "q", 1, 1))
    assert isinstance(result, Rejected) and result.code is RejectCode.STALE_RECEIPT
    gone = run_one(machine, log, Ack(T + TIMEOUT_S * 1000, "q", 99, 1))
    assert isinstance(gone, Rejected) and gone.code is RejectCode.MESSAGE_NOT_FOUND


def test_the_delivery_count_survives_a_snapshot_and_a_restart(machine, log, tmp_path):
    redelivered(machine, log)
    path = str(tmp_path / "snapshot")
    machine.snapshot(path)
    restored = open_machine(str(tmp_path / "restored"))
    try:
        restored.restore(path)
        assert restored.get_message("q", 1).message.deliveries == 2
        tail = Log()
        tail.index = restored.last_applied()[0]
        now = T + TIMEOUT_S * 1000 + 1
        assert run_one(restored, tail, Ack(now, "q", 1, 2)) == Acked(1)
    finally:
        restored.close()


def test_a_record_stored_before_the_count_existed_reads_as_no_delivery():
    old = msgspec.msgpack.encode((True, 0, 5, 123, "default", "x", None))
    assert unpack_message(old) == MessageRecord(True, 0, 5, 123, "default", "x", None, 0)
