"""The linearizability check (Wing-Gong search with memoization) against hand-made histories of
one queue: it accepts what the queue's specification allows, with concurrency, expiry and
unknown outcomes, and rejects what it does not."""

from __future__ import annotations

from simulations.checkers.linearizability import HistoryOp, check
from simulations.checkers.model import Call, QueueKind

DELAYED = QueueKind(fair=False, max_unacked=0)
FAIR = QueueKind(fair=True, max_unacked=0)


def op(call_us: int, return_us: int | None, call: Call, key: tuple | None) -> HistoryOp:
    return HistoryOp(call_us, return_us, call, key, f"{call.kind}@{call_us}")


def create(t: int) -> HistoryOp:
    return op(t, t + 1, Call("create"), ("created", True))


def enqueue(t: int, message_id: int, priority: int = 0, group: str = "default") -> HistoryOp:
    content = f"m{message_id}"
    call = Call("enqueue", message_id, priority, group, content)
    return op(t, t + 1, call, ("enqueued", message_id, content))


def dequeued(message_id: int, priority: int = 0, group: str = "default") -> tuple:
    return ("dequeued", message_id, f"m{message_id}", priority, group)


def test_a_sequential_history_that_follows_priority_then_id_order_is_linearizable():
    ops = [
        create(0),
        enqueue(10, 2, priority=1),
        enqueue(20, 1, priority=1),
        enqueue(30, 3, priority=0),
        op(40, 41, Call("dequeue"), dequeued(3, 0)),
        op(50, 51, Call("dequeue"), dequeued(1, 1)),
        op(60, 61, Call("ack", 1), ("acked", 1)),
        op(70, 71, Call("info"), ("info", 2, 3, 1)),
    ]
    assert check(DELAYED, ops).ok


def test_delivering_out_of_order_is_not_linearizable():
    ops = [
        create(0),
        enqueue(10, 1),
        enqueue(20, 2),
        op(30, 31, Call("dequeue"), dequeued(2)),  # 1 was enqueued first with equal priority
    ]
    result = check(DELAYED, ops)
    assert not result.ok and not result.inconclusive
    assert "dequeue@30" in result.detail


def test_concurrent_enqueues_may_take_effect_in_either_order():
    ops = [
        create(0),
        op(10, 50, Call("enqueue", 5, 0, "default", "m5"), ("enqueued", 5, "m5")),
        op(20, 40, Call("dequeue"), dequeued(5)),  # overlaps the enqueue: it may come after it
    ]
    assert check(DELAYED, ops).ok


def test_an_operation_cannot_see_one_that_began_after_it_returned():
    ops = [create(0), op(10, 20, Call("dequeue"), dequeued(5)), enqueue(30, 5)]
    assert not check(DELAYED, ops).ok


def test_an_acked_message_is_never_delivered_again():
    ops = [
        create(0),
        enqueue(10, 1),
        op(20, 21, Call("dequeue"), dequeued(1)),
        op(30, 31, Call("ack", 1), ("acked", 1)),
        op(40, 41, Call("dequeue"), dequeued(1)),
    ]
    assert not check(DELAYED, ops).ok


def test_an_expired_lease_lets_the_message_come_back_and_makes_the_late_ack_fail():
    ops = [
        create(0),
        enqueue(10, 1),
        op(20, 21, Call("dequeue"), dequeued(1)),
        op(30, 31, Call("dequeue"), dequeued(1)),  # the first lease ran out (time is not modelled)
        op(40, 41, Call("touch", 1), ("touched", 1)),
        op(50, 51, Call("info"), ("info", 1, 1, 0)),
    ]
    assert check(DELAYED, ops).ok


def test_messages_expire_in_deadline_order():
    ops = [
        create(0),
        enqueue(10, 1),
        enqueue(11, 2),
        op(20, 21, Call("dequeue"), dequeued(1)),
        op(30, 31, Call("dequeue"), dequeued(2)),
        op(40, 41, Call("touch", 1), ("touched", 1)),  # 1's deadline is now after 2's
        op(50, 51, Call("ack", 2), ("rejected", "message_not_found")),  # 2 expired ...
        op(60, 61, Call("ack", 1), ("acked", 1)),  # ... while 1, touched later, had not
    ]
    assert check(DELAYED, ops).ok
    reversed_order = [*ops[:6], op(50, 51, Call("ack", 1), ("rejected", "message_not_found"))]
    reversed_order.append(op(60, 61, Call("ack", 2), ("acked", 2)))
    assert not check(DELAYED, reversed_order).ok


def test_an_operation_with_unknown_outcome_may_have_happened_or_not():
    maybe = op(10, None, Call("enqueue", 7, 0, "default", "m7"), None)
    seen = [create(0), maybe, op(100, 101, Call("dequeue"), dequeued(7))]
    unseen = [create(0), maybe, op(100, 101, Call("dequeue"), ("rejected", "queue_empty"))]
    assert check(DELAYED, seen).ok
    assert check(DELAYED, unseen).ok


def test_a_read_must_see_every_write_that_completed_before_it():
    ops = [create(0), enqueue(10, 1), op(20, 21, Call("info"), ("info", 0, 0, 0))]
    assert not check(DELAYED, ops).ok


def test_a_fair_queue_may_serve_any_group_but_each_group_in_order():
    base = [create(0), enqueue(10, 1, group="a"), enqueue(11, 2, group="a")]
    base.append(enqueue(12, 3, group="b"))
    assert check(FAIR, [*base, op(20, 21, Call("dequeue"), dequeued(3, group="b"))]).ok
    assert check(FAIR, [*base, op(20, 21, Call("dequeue"), dequeued(1, group="a"))]).ok
    assert not check(FAIR, [*base, op(20, 21, Call("dequeue"), dequeued(2, group="a"))]).ok


def test_a_group_at_its_cap_is_skipped():
    capped = QueueKind(fair=True, max_unacked=1)
    ops = [
        create(0),
        enqueue(10, 1, group="a"),
        enqueue(11, 2, group="a"),
        op(20, 21, Call("dequeue"), dequeued(1, group="a")),
        op(30, 31, Call("dequeue"), ("rejected", "queue_empty")),  # 1 still held: a is capped
    ]
    assert check(capped, ops).ok
    assert not check(FAIR, ops).ok  # without a cap, 2 was deliverable


def test_the_final_state_must_match():
    ops = [create(0), enqueue(10, 1), op(20, 21, Call("dequeue"), dequeued(1))]
    final_ok = ("final", True, ((1, 0, "m1", True),))
    final_lost = ("final", True, ())
    assert check(DELAYED, [*ops, op(100, 100, Call("final"), final_ok)]).ok
    assert not check(DELAYED, [*ops, op(100, 100, Call("final"), final_lost)]).ok


def test_the_search_gives_up_as_inconclusive_rather_than_run_for_ever():
    unknown = [op(i, None, Call("dequeue"), None) for i in range(1, 12)]
    ops = [create(0), *[enqueue(100 + i, i) for i in range(8)], *unknown]
    ops.append(op(500, 501, Call("info"), ("info", 99, 99, 99)))  # unreachable: forces search
    result = check(DELAYED, ops, states_max=50)
    assert result.inconclusive and not result.ok
