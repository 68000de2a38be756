"""The checkers over a real history (simulations/realnet/history.py).

- no acknowledged enqueue lost: every enqueue answered ``ok`` is delivered by some ``ok``
  dequeue or still stored at the end (a ``GET`` of it answers 200 after the drain). A missing
  message is excused only while the queue has at least as many ``unknown`` acking dequeues as
  missing messages (one of those may have taken it unseen); otherwise it is lost;
- no message delivered again after its ack was acknowledged, and no message delivered twice
  while its lease is valid (leases here outlive the run: any second delivery is one);
- no message invented: every delivery is of an ID some enqueue sent, with that content;
- each queue linearizable against the queue model, with the simulator's search
  (simulations/checkers/linearizability.py; unknown outcomes may take effect at any time or
  never);
- availability: the longest time without a successful write, and how long each fault that hit
  the leader took to be followed by one (failover).
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import attrs

from simulations.checkers.linearizability import HistoryOp, check
from simulations.checkers.model import EMPTY, NOT_FOUND_MESSAGE, Call, QueueKind
from simulations.realnet.history import OK, UNKNOWN, Op

DELAYED = QueueKind(fair=False, max_unacked=0)
LINEARIZABILITY_STATES_MAX = 200_000


@attrs.frozen
class Finding:
    kind: str
    detail: str


@attrs.define
class Verdict:
    violations: list[Finding] = attrs.Factory(list)
    inconclusive: list[str] = attrs.Factory(list)  # queues whose search gave up
    excused: int = 0  # missing messages an unknown dequeue may have taken
    queues_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


def delivered(op: Op) -> bool:
    return op.kind == "dequeue" and op.outcome == OK and not op.empty


def check_messages(ops: list[Op], stored: set[tuple[str, int]], verdict: Verdict) -> None:
    sent: dict[tuple[str, int], str] = {}
    for op in ops:
        if op.kind == "enqueue":
            sent[(op.queue, op.id)] = op.content
    deliveries: dict[tuple[str, int], list[Op]] = defaultdict(list)
    for op in sorted((o for o in ops if delivered(o)), key=lambda o: o.invoke_us):
        key = (op.queue, op.id)
        if sent.get(key) != op.content:
            verdict.violations.append(
                Finding("invented", f"{op.queue}: {op.id} {op.content!r} was never enqueued")
            )
        deliveries[key].append(op)
    _check_redelivery(ops, deliveries, verdict)
    _check_lost(ops, deliveries, stored, verdict)


def _check_redelivery(ops: list[Op], deliveries: dict, verdict: Verdict) -> None:
    acked_us: dict[tuple[str, int], int] = {}
    for op in ops:
        if op.kind == "ack" and op.outcome == OK and not op.not_found:
            acked_us.setdefault((op.queue, op.id), op.complete_us)
    for key, got in deliveries.items():
        first = got[0]
        if first.ack:
            acked_us.setdefault(key, first.complete_us)
        done_us = acked_us.get(key)
        for again in got[1:]:
            if done_us is not None and again.invoke_us > done_us:
                kind, why = "redelivered after ack", f"acked at {done_us} us"
            else:
                kind, why = "delivered twice", f"first delivered at {first.complete_us} us"
            verdict.violations.append(
                Finding(
                    kind,
                    f"{key[0]}: message {key[1]} delivered again at {again.complete_us} us ({why})",
                )
            )


def _check_lost(ops: list[Op], deliveries: dict, stored: set, verdict: Verdict) -> None:
    missing: dict[str, list[int]] = defaultdict(list)
    for op in ops:
        if op.kind == "enqueue" and op.outcome == OK:
            key = (op.queue, op.id)
            if key not in deliveries and key not in stored:
                missing[op.queue].append(op.id)
    for queue, ids in missing.items():
        blind = sum(
            1
            for o in ops
            if o.queue == queue and o.kind == "dequeue" and o.ack and o.outcome == UNKNOWN
        )
        if len(ids) <= blind:
            verdict.excused += len(ids)
        else:
            verdict.violations.append(
                Finding(
                    "acknowledged enqueue lost",
                    f"{queue}: {sorted(ids)} acknowledged, never seen again",
                )
            )


def history_op(op: Op) -> HistoryOp | None:
    """The simulator's view of one operation; None for one that certainly did not happen."""
    if op.outcome not in (OK, UNKNOWN):
        return None
    known = op.outcome == OK
    if op.kind == "create":
        call, key = Call("create"), ("created", True)
    elif op.kind == "enqueue":
        call = Call("enqueue", id=op.id, priority=op.priority, content=op.content)
        key = ("enqueued", op.id, op.content)
    elif op.kind == "dequeue":
        call = Call("dequeue", ack=op.ack)
        key = EMPTY if op.empty else ("dequeued", op.id, op.content, op.priority, "default")
    else:
        call = Call("ack", id=op.id)
        key = NOT_FOUND_MESSAGE if op.not_found else ("acked", op.id)
    label = f"client {op.client} {op.kind}{' ack' if op.ack else ''} {op.id or ''} via {op.node}"
    return HistoryOp(
        op.invoke_us, op.complete_us if known else None, call, key if known else None, label
    )


def check_linearizable(ops: list[Op], verdict: Verdict) -> None:
    per_queue: dict[str, list[HistoryOp]] = defaultdict(list)
    for op in ops:
        converted = history_op(op)
        if converted is not None:
            per_queue[op.queue].append(converted)
    for queue, history in sorted(per_queue.items()):
        verdict.queues_checked += 1
        result = check(DELAYED, history, LINEARIZABILITY_STATES_MAX)
        if result.inconclusive:
            verdict.inconclusive.append(queue)
        elif not result.ok:
            verdict.violations.append(Finding("not linearizable", f"{queue}: {result.detail}"))


def check_all(ops: list[Op], stored: set[tuple[str, int]]) -> Verdict:
    verdict = Verdict()
    check_messages(ops, stored, verdict)
    check_linearizable(ops, verdict)
    return verdict


def write_gaps_us(ops: list[Op], start_us: int, end_us: int) -> list[tuple[int, int]]:
    """The gaps between successive successful writes, as (from, to) µs, longest first."""
    times = sorted(o.complete_us for o in ops if _enqueued(o))
    points = [start_us, *[t for t in times if start_us <= t <= end_us], end_us]
    return sorted(itertools.pairwise(points), key=lambda g: g[0] - g[1])


def _enqueued(op: Op) -> bool:
    return op.kind == "enqueue" and op.outcome == OK and op.status // 100 == 2


def recovery_us(ops: list[Op], at_us: int) -> int | None:
    """From ``at_us`` to the completion of the first successful enqueue invoked after it."""
    after = [o.complete_us for o in ops if _enqueued(o) and o.invoke_us >= at_us]
    return min(after) - at_us if after else None


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]
