"""The linearizability search's shortcuts (the order it tries candidates in, the pairs it skips
as dominated, the first pass that leaves out unknown operations nobody saw) against a plain
Wing-Gong search kept here: on random small histories, and on the shapes they were made for,
they give the same verdict; and the shapes that made the soak's search give up are concluded
within a small budget."""

from __future__ import annotations

import random

from simulations.checkers import model
from simulations.checkers.linearizability import HistoryOp, check
from simulations.checkers.model import INITIAL, Call, QueueKind, State, transitions

DELAYED = QueueKind(fair=False, max_unacked=0)
FAIR = QueueKind(fair=True, max_unacked=1)


def reference(kind: QueueKind, ops: list[HistoryOp]) -> bool:
    """Wing and Gong with Lowe's memoization and nothing else: every candidate, every
    transition, every pair (operations linearized, state) once."""
    ops = sorted(ops, key=lambda op: op.call_us)
    never = 1 << 62
    returns = [never if op.return_us is None else op.return_us for op in ops]
    required = sum(1 << i for i, op in enumerate(ops) if op.return_us is not None)
    visited: set[tuple[int, State]] = set()
    stack: list[tuple[int, State]] = [(0, INITIAL)]
    while stack:
        done, state = stack.pop()
        if done & required == required:
            return True
        if (done, state) in visited:
            continue
        visited.add((done, state))
        pending = [i for i in range(len(ops)) if not done >> i & 1]
        first_return = min((returns[i] for i in pending), default=never)
        for i in pending:
            if ops[i].call_us > first_return:
                continue
            for key, after in transitions(kind, state, ops[i].call):
                if ops[i].key is None or key == ops[i].key:
                    stack.append((done | 1 << i, after))
    return False


def op(call_us: int, return_us: int | None, call: Call, key: tuple | None) -> HistoryOp:
    return HistoryOp(call_us, return_us, call, key, f"{call.kind}@{call_us}")


def enqueue(t: int, message_id: int, priority: int = 0, known: bool = True) -> HistoryOp:
    call = Call("enqueue", message_id, priority, "default", f"m{message_id}")
    key = ("enqueued", message_id, f"m{message_id}") if known else None
    return op(t, t + 1 if known else None, call, key)


def dequeued(message_id: int, priority: int = 0) -> tuple:
    return ("dequeued", message_id, f"m{message_id}", priority, "default")


CREATE = op(0, 1, Call("create"), ("created", True))


def random_history(rng: random.Random, kind: QueueKind) -> list[HistoryOp]:
    """A few operations on a few messages, overlapping, some with unknown outcome, with the
    results of one run of the model in a random order consistent with their windows; one time
    in three a result is then altered (which most often makes the history non-linearizable)."""
    ops = []
    for _ in range(rng.randint(2, 7)):
        start = rng.randint(2, 60)
        message_id = rng.randint(1, 3)
        call = rng.choice(
            [
                Call("enqueue", message_id, rng.randint(0, 1), rng.choice("ab"), f"m{message_id}"),
                Call("enqueue", message_id, rng.randint(0, 1), "a", f"m{message_id}"),
                Call("dequeue", ack=rng.random() < 0.5),
                Call("dequeue"),
                Call("ack", message_id),
                Call("touch", message_id),
                Call("info"),
            ]
        )
        ops.append((start, start + rng.randint(0, 25), call, rng.random() < 0.2))
    if rng.random() < 0.3:
        ops.append((90, 91, Call("final"), False))
    points = sorted(ops, key=lambda o: rng.uniform(o[0], o[1]))
    state, history = INITIAL, [CREATE]
    state = transitions(kind, state, CREATE.call)[0][1]
    for start, end, call, unknown in points:
        happens = not unknown or rng.random() < 0.5
        if happens:
            key, state = rng.choice(transitions(kind, state, call))
        if unknown:
            history.append(op(start, None, call, None))
        elif happens:
            history.append(op(start, end, call, key))
    known = [i for i, h in enumerate(history) if h.key is not None and i > 0]
    if known and rng.random() < 1 / 3:
        i = rng.choice(known)
        history[i] = op(history[i].call_us, history[i].return_us, history[i].call, _alter(rng))
    return history


def _alter(rng: random.Random) -> tuple:
    return rng.choice(
        [
            dequeued(rng.randint(1, 3), rng.randint(0, 1)),
            ("rejected", "queue_empty"),
            ("rejected", "message_not_found"),
            ("acked", rng.randint(1, 3)),
            ("info", rng.randint(0, 2), rng.randint(0, 3), 0),
        ]
    )


def test_the_search_agrees_with_a_plain_one_on_random_small_histories():
    rng = random.Random(20261205)
    verdicts = {True: 0, False: 0}
    for _ in range(1500):
        kind = rng.choice([DELAYED, FAIR])
        history = random_history(rng, kind)
        expected = reference(kind, history)
        result = check(kind, history)
        assert not result.inconclusive
        assert result.ok == expected, history
        verdicts[expected] += 1
    assert min(verdicts.values()) > 200  # both verdicts are well represented


def test_an_unknown_enqueue_nobody_saw_delivered_may_still_have_happened():
    # The first pass leaves it out and finds no order (info counts it); the full search does.
    ops = [CREATE, enqueue(10, 7, known=False), op(100, 101, Call("info"), ("info", 1, 1, 0))]
    assert check(DELAYED, ops).ok
    assert not check(DELAYED, [*ops[:1], *ops[2:]]).ok


def test_an_unknown_enqueue_cannot_take_effect_before_it_was_invoked():
    ops = [CREATE, op(10, 20, Call("dequeue"), dequeued(7)), enqueue(30, 7, known=False)]
    result = check(DELAYED, ops)
    assert not result.ok and not result.inconclusive


def test_concurrent_dequeues_cannot_both_take_one_message_whatever_the_unknown_operations():
    ops = [
        CREATE,
        enqueue(10, 1),
        enqueue(11, 2, known=False),  # unseen: the first pass leaves it out
        op(12, None, Call("dequeue"), None),
        op(20, 40, Call("dequeue", ack=True), dequeued(1)),
        op(21, 41, Call("dequeue", ack=True), dequeued(1)),
    ]
    result = check(DELAYED, ops)
    assert not result.ok and not result.inconclusive


def test_a_lease_that_expired_before_the_final_state_is_not_lost_to_the_dominance():
    # 1 must expire at the ack of 2 (the last operation that expires leases) for the final state
    # to show it not in flight: with a final state to match, "fewer expired" does not dominate.
    ops = [
        CREATE,
        enqueue(10, 1),
        enqueue(11, 2),
        op(20, 21, Call("dequeue"), dequeued(1)),
        op(30, 31, Call("dequeue"), dequeued(2)),
        op(40, 41, Call("ack", 2), ("acked", 2)),
        op(50, 51, Call("final"), ("final", True, ((1, 0, "m1", False),))),
    ]
    assert check(DELAYED, ops).ok


def test_unknown_enqueues_nobody_saw_do_not_make_the_search_give_up():
    # The shape of the soak's slow queues: each round a client's enqueue of a message of the
    # first priority times out (it never happened), another's is delivered. Before, the search
    # tried the unknown enqueues at every depth and gave up.
    ops, t = [CREATE], 10
    for r in range(1, 25):
        ops.append(enqueue(t, 100 + r, priority=1))
        ops.append(enqueue(t, r, priority=0, known=False))
        ops.append(op(t + 5, t + 20, Call("dequeue", ack=True), dequeued(100 + r, 1)))
        ops.append(op(t + 6, t + 21, Call("dequeue"), ("rejected", "queue_empty")))
        t += 30
    result = check(DELAYED, ops, 2_000)
    assert result.ok and not result.inconclusive


def test_many_leases_in_flight_do_not_multiply_the_pairs_explored():
    # 20 leases held while 30 more messages are delivered: before each delivery any prefix of
    # the leases may have expired. The pairs with fewer expired dominate, so exhausting the
    # history (to find the violation at its end) takes about a pair per operation, not 20.
    ops, t = [CREATE], 10
    for r in range(1, 21):
        ops.append(enqueue(t, r, priority=5))
        ops.append(op(t + 2, t + 3, Call("dequeue"), dequeued(r, 5)))
        t += 10
    for r in range(101, 131):
        ops.append(enqueue(t, r))
        ops.append(op(t + 2, t + 3, Call("dequeue", ack=True), dequeued(r)))
        t += 10
    ops.append(op(t, t + 1, Call("dequeue"), dequeued(999)))  # never enqueued
    result = check(DELAYED, ops, 300)
    assert not result.ok and not result.inconclusive


def test_a_delayed_dequeue_after_each_expiry_is_what_one_scan_per_expiry_gives():
    rng = random.Random(7)
    for _ in range(300):
        state = INITIAL
        for _ in range(rng.randint(0, 12)):
            message_id = rng.randint(1, 6)
            call = rng.choice(
                [
                    Call("enqueue", message_id, rng.randint(0, 2), "default", f"m{message_id}"),
                    Call("dequeue", ack=rng.random() < 0.3),
                    Call("touch", message_id),
                ]
            )
            state = rng.choice(transitions(DELAYED, (True, *state[1:]), call))[1]
        state = (True, *state[1:])
        for ack in (False, True):
            call = Call("dequeue", ack=ack)
            plain = [t for s in model._expiries(state) for t in model._dequeue(DELAYED, s, call)]
            assert transitions(DELAYED, state, call) == plain
