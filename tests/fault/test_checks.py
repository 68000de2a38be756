"""The real-network checkers (simulations/realnet/check.py) on small hand-made histories: each
violation they exist for is found, and a clean history passes. No root, no processes."""

from __future__ import annotations

from simulations.realnet.check import check_all, recovery_us, write_gaps_us
from simulations.realnet.history import FAILED, OK, UNKNOWN, Op

Q = "q"


def op(kind: str, t0: int, t1: int, outcome: str = OK, **kw) -> Op:
    status = kw.pop("status", 400 if kw.get("empty") else 404 if kw.get("not_found") else 200)
    return Op(0, Q, kind, t0, "n1", outcome=outcome, complete_us=t1, status=status, **kw)


def create() -> Op:
    return op("create", 0, 1)


def enq(t0: int, t1: int, message_id: int, outcome: str = OK) -> Op:
    return op("enqueue", t0, t1, outcome, id=message_id, content=f"m{message_id}")


def deq(t0: int, t1: int, message_id: int = 0, ack: bool = False, **kw) -> Op:
    return op("dequeue", t0, t1, id=message_id, content=f"m{message_id}", ack=ack, **kw)


def kinds(verdict) -> list[str]:
    return [f.kind for f in verdict.violations]


def test_a_clean_history_passes():
    history = [
        create(),
        enq(10, 20, 1),
        deq(30, 40, 1),
        op("ack", 50, 60, id=1),
        deq(70, 80, ack=True, empty=True),
    ]
    verdict = check_all(history, stored=set())
    assert verdict.ok and verdict.queues_checked == 1, verdict


def test_an_acknowledged_enqueue_never_seen_again_is_lost():
    history = [create(), enq(10, 20, 1), deq(30, 40, ack=True, empty=True)]
    assert "acknowledged enqueue lost" in kinds(check_all(history, stored=set()))


def test_a_message_still_stored_in_flight_is_not_lost():
    history = [create(), enq(10, 20, 1), deq(30, 40, 1), deq(50, 60, ack=True, empty=True)]
    assert check_all(history, stored={(Q, 1)}).ok


def test_an_unknown_acking_dequeue_may_have_taken_the_missing_message():
    history = [create(), enq(10, 20, 1), deq(30, 0, ack=True, outcome=UNKNOWN, status=503)]
    history[-1].complete_us = 40
    verdict = check_all(history, stored=set())
    assert verdict.ok and verdict.excused == 1, verdict


def test_a_message_delivered_after_its_ack_was_acknowledged_is_found():
    history = [
        create(),
        enq(10, 20, 1),
        deq(30, 40, 1),
        op("ack", 50, 60, id=1),
        deq(70, 80, 1),
    ]
    assert "redelivered after ack" in kinds(check_all(history, stored=set()))


def test_a_message_nobody_enqueued_is_invented():
    history = [create(), enq(10, 20, 1), deq(30, 40, 1), deq(50, 60, 7)]
    assert "invented" in kinds(check_all(history, stored={(Q, 1)}))


def test_a_stale_empty_answer_after_an_acknowledged_enqueue_is_not_linearizable():
    # The enqueue finished before the dequeue began, yet the dequeue saw an empty queue (a
    # stale read from a deposed leader would look like this); the message is then delivered.
    history = [
        create(),
        enq(10, 20, 1),
        deq(30, 40, ack=True, empty=True),
        deq(50, 60, 1, ack=True),
    ]
    assert kinds(check_all(history, stored=set())) == ["not linearizable"]


def test_a_failed_operation_never_happened():
    history = [create(), enq(10, 20, 1, outcome=FAILED), deq(30, 40, ack=True, empty=True)]
    assert check_all(history, stored=set()).ok


def test_availability_measures_the_gaps_between_successful_enqueues():
    history = [
        enq(0, 100, 1),
        enq(150, 200, 2),
        enq(300, 5_000, 3, outcome=UNKNOWN),
        enq(6_000, 6_100, 4),
    ]
    assert write_gaps_us(history, 0, 7_000)[0] == (200, 6_100)
    assert recovery_us(history, 250) == 6_100 - 250
